import type { BlobDestination } from '../blob/download.js';
import type { CommandContext } from './context.js';
import { EXIT } from './exit-codes.js';
import { formatBytes } from './format.js';

export interface GetArgs {
  restoreKey?: string[];
  version?: string;
}

/** `gha-cache get KEY FILE|-`: fetch raw bytes to a file or stdout. Exit 1 on a miss. */
export async function getCommand(
  ctx: CommandContext,
  key: string,
  file: string,
  args: GetArgs,
): Promise<number> {
  const started = Date.now();
  if (file === '-') ctx.stdoutIsData = true;
  const destination: BlobDestination = file === '-' ? { stream: ctx.io.stdout } : { path: file };
  const result = await ctx.client().getBlob(key, {
    destination,
    ...(args.restoreKey ? { restoreKeys: args.restoreKey } : {}),
    ...(args.version ? { version: args.version } : {}),
  });
  const durationMs = Date.now() - started;
  if (!result.hit) {
    ctx.result(
      { key, ...result, durationMs },
      result.reason === 'cache_mode'
        ? 'Get skipped: ACTIONS_CACHE_MODE does not allow reads'
        : `Cache miss: ${key}`,
    );
    return EXIT.MISS;
  }
  ctx.result(
    { key, ...result, durationMs },
    `Fetched ${result.matchedKey} (${formatBytes(result.sizeBytes ?? 0)}) in ${(durationMs / 1000).toFixed(2)} s`,
  );
  return EXIT.OK;
}
