import type { CommandContext } from './context.js';
import { EXIT } from './exit-codes.js';
import { formatBytes } from './format.js';

export interface SaveArgs {
  path: string[];
  key: string;
  enableCrossOsArchive?: boolean;
}

/** `gha-cache save --path P… --key K`: archive like `@actions/cache` and store. */
export async function saveCommand(ctx: CommandContext, args: SaveArgs): Promise<number> {
  const started = Date.now();
  const result = await ctx
    .client()
    .save(args.path, args.key, args.enableCrossOsArchive ? { enableCrossOsArchive: true } : {});
  const durationMs = Date.now() - started;
  if (result.saved) {
    ctx.result(
      { ...result, durationMs },
      `Cache saved with key: ${result.key} (${formatBytes(result.sizeBytes)}, entry ${result.entryId})`,
    );
  } else {
    ctx.result(
      { ...result, durationMs },
      result.reason === 'cache_mode'
        ? `Cache save skipped: ACTIONS_CACHE_MODE does not allow writes`
        : `Cache entry ${result.key} already exists; not saving`,
    );
  }
  return EXIT.OK;
}
