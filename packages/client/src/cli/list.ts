import type { ActionsCache, CacheSortField } from '../rest/cache-api.js';
import type { CommandContext } from './context.js';
import { EXIT } from './exit-codes.js';
import { formatBytes, formatTable } from './format.js';

export interface ListArgs {
  key?: string;
  ref?: string;
  sort?: CacheSortField;
  direction?: 'asc' | 'desc';
  limit?: number;
}

/** `2026-11-26T12:00:00.123Z` → `2026-11-26 12:00:00Z`. */
const shortDate = (iso: string) => iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z');

/** `gha-cache list`: the repository's caches through GitHub's REST API, as a table or `--json`. */
export async function listCommand(ctx: CommandContext, args: ListArgs): Promise<number> {
  const rest = ctx.restClient();
  const caches: ActionsCache[] = [];
  for await (const cache of rest.listAllCaches({
    ...(args.key ? { key: args.key } : {}),
    ...(args.ref ? { ref: args.ref } : {}),
    ...(args.sort ? { sort: args.sort } : {}),
    ...(args.direction ? { direction: args.direction } : {}),
    ...(args.limit !== undefined && args.limit < 100 ? { perPage: args.limit } : {}),
  })) {
    caches.push(cache);
    if (args.limit !== undefined && caches.length >= args.limit) break;
  }
  const totalBytes = caches.reduce((n, c) => n + c.sizeInBytes, 0);
  const table = formatTable([
    ['ID', 'KEY', 'REF', 'SIZE', 'CREATED', 'LAST ACCESSED'],
    ...caches.map((c) => [
      String(c.id),
      c.key,
      c.ref,
      formatBytes(c.sizeInBytes),
      shortDate(c.createdAt),
      shortDate(c.lastAccessedAt),
    ]),
  ]);
  const summary = `${caches.length} cache${caches.length === 1 ? '' : 's'}, ${formatBytes(totalBytes)}`;
  ctx.result(
    { repository: rest.repository, count: caches.length, sizeInBytes: totalBytes, caches },
    caches.length === 0 ? 'No caches' : `${table}\n${summary}`,
  );
  return EXIT.OK;
}
