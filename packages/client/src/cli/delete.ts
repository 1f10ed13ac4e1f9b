import { NotFoundError, ValidationError } from '../errors.js';
import type { CommandContext } from './context.js';
import { EXIT } from './exit-codes.js';

export interface DeleteArgs {
  key?: string;
  ref?: string;
}

/**
 * `gha-cache delete ID` or `gha-cache delete --key K [--ref R]` through GitHub's REST API.
 * Nothing to delete (404) is exit 1, like a miss.
 */
export async function deleteCommand(
  ctx: CommandContext,
  id: string | undefined,
  args: DeleteArgs,
): Promise<number> {
  if ((id === undefined) === (args.key === undefined)) {
    throw new ValidationError('delete: give either a cache id or --key (not both)');
  }
  if (args.ref !== undefined && args.key === undefined) {
    throw new ValidationError('delete: --ref only narrows --key');
  }
  if (id !== undefined && !/^[1-9]\d{0,15}$/.test(id)) {
    throw new ValidationError(`delete: "${id}" is not a cache id (see gha-cache list)`);
  }
  const rest = ctx.restClient();
  try {
    if (id !== undefined) {
      await rest.deleteCacheById(Number(id));
      ctx.result(
        { repository: rest.repository, deletedCount: 1, deleted: [{ id: Number(id) }] },
        `Deleted cache ${id}`,
      );
      return EXIT.OK;
    }
    const deleted = await rest.deleteCaches({ key: args.key!, ...(args.ref ? { ref: args.ref } : {}) });
    ctx.result(
      { repository: rest.repository, deletedCount: deleted.length, deleted },
      `Deleted ${deleted.length} cache${deleted.length === 1 ? '' : 's'} with key ${args.key}${args.ref ? ` on ${args.ref}` : ''}`,
    );
    return EXIT.OK;
  } catch (err) {
    if (!(err instanceof NotFoundError)) throw err;
    const what =
      id !== undefined ? `cache ${id}` : `caches with key ${args.key}${args.ref ? ` on ${args.ref}` : ''}`;
    ctx.result(
      { repository: rest.repository, deletedCount: 0, deleted: [], notFound: true },
      `Nothing deleted: no ${what} (or no such repository)`,
    );
    return EXIT.MISS;
  }
}
