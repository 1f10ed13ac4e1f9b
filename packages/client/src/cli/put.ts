import type { BlobSource } from '../blob/upload.js';
import type { CommandContext } from './context.js';
import { EXIT } from './exit-codes.js';
import { formatBytes } from './format.js';

export interface PutArgs {
  version?: string;
}

/** `gha-cache put KEY FILE|-`: store raw bytes (a file, or stdin of unknown length). */
export async function putCommand(
  ctx: CommandContext,
  key: string,
  file: string,
  args: PutArgs,
): Promise<number> {
  const started = Date.now();
  const source: BlobSource = file === '-' ? { stream: ctx.io.stdin } : { path: file };
  const result = await ctx.client().putBlob(key, source, args.version ? { version: args.version } : {});
  const durationMs = Date.now() - started;
  ctx.result(
    { ...result, durationMs },
    result.saved
      ? `Stored ${result.key} (${formatBytes(result.sizeBytes)}, entry ${result.entryId})`
      : result.reason === 'cache_mode'
        ? 'Put skipped: ACTIONS_CACHE_MODE does not allow writes'
        : `Entry ${result.key} already exists; not stored`,
  );
  return EXIT.OK;
}
