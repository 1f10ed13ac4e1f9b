import type { CommandContext } from './context.js';
import { EXIT } from './exit-codes.js';
import { formatBytes } from './format.js';

export interface RestoreArgs {
  path: string[];
  key: string;
  restoreKey?: string[];
  lookupOnly?: boolean;
  failOnMiss?: boolean;
  enableCrossOsArchive?: boolean;
}

/** `gha-cache restore --path P… --key K [--restore-key R…]`: like `actions/cache/restore`. */
export async function restoreCommand(ctx: CommandContext, args: RestoreArgs): Promise<number> {
  const started = Date.now();
  const result = await ctx.client().restore(args.path, args.key, args.restoreKey ?? [], {
    ...(args.lookupOnly ? { lookupOnly: true } : {}),
    ...(args.enableCrossOsArchive ? { enableCrossOsArchive: true } : {}),
  });
  const durationMs = Date.now() - started;
  if (!result.hit) {
    ctx.result(
      { key: args.key, ...result, cacheHit: false, durationMs },
      result.reason === 'cache_mode'
        ? 'Cache restore skipped: ACTIONS_CACHE_MODE does not allow reads'
        : `Cache not found for input keys: ${[args.key, ...(args.restoreKey ?? [])].join(', ')}`,
    );
    return args.failOnMiss ? EXIT.MISS : EXIT.OK;
  }
  ctx.result(
    {
      key: args.key,
      ...result,
      cacheHit: result.exactMatch,
      lookupOnly: args.lookupOnly === true,
      durationMs,
    },
    args.lookupOnly
      ? `Cache found for key: ${result.matchedKey} (lookup only)`
      : `Cache restored from key: ${result.matchedKey}${result.sizeBytes !== undefined ? ` (${formatBytes(result.sizeBytes)})` : ''}`,
  );
  return EXIT.OK;
}
