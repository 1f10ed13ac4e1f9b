import type { CommandContext } from './context.js';
import { EXIT } from './exit-codes.js';

export interface LookupArgs {
  restoreKey?: string[];
  version?: string;
  path?: string[];
  enableCrossOsArchive?: boolean;
}

/**
 * `gha-cache lookup KEY`: is there an entry? `--path` looks up an archive entry (its version is derived
 * from the paths like `save`), `--version` a given version, otherwise a raw blob. Exit 1 on a miss.
 */
export async function lookupCommand(ctx: CommandContext, key: string, args: LookupArgs): Promise<number> {
  const client = ctx.client();
  const version =
    args.version ??
    (args.path && args.path.length > 0
      ? await client.archiveVersion(
          args.path,
          args.enableCrossOsArchive ? { enableCrossOsArchive: true } : {},
        )
      : undefined);
  const result = await client.lookup(key, {
    ...(args.restoreKey ? { restoreKeys: args.restoreKey } : {}),
    ...(version ? { version } : {}),
  });
  const { url: _url, ...shown } = result;
  if (!result.hit) {
    ctx.result({ key, ...shown }, `Cache miss: ${key}`);
    return EXIT.MISS;
  }
  ctx.result({ key, ...shown }, result.matchedKey);
  return EXIT.OK;
}
