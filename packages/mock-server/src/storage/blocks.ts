import { randomBytes } from 'node:crypto';
import { type BlockListItem, StorageError } from './types.js';

/** Decoded byte length of a canonical base64 block id. */
export function blockIdByteLength(blockId: string): number {
  return Buffer.from(blockId, 'base64').length;
}

/** A fresh quoted ETag in Azure's style: `"0x8DD…"`. */
export function newEtag(now: number): string {
  const ticks = (BigInt(now) * 10_000n + 621_355_968_000_000_000n).toString(16).toUpperCase();
  return `"0x${ticks}${randomBytes(2).toString('hex').toUpperCase()}"`;
}

export interface ResolvedBlock {
  readonly id: string;
  readonly from: 'staged' | 'committed';
}

/**
 * Resolves a block list the way Azure does: `Uncommitted` → staged only, `Committed` → committed
 * only, `Latest` → staged, else committed. Any miss throws `InvalidBlockList` (nothing changes).
 */
export function resolveBlockList(
  items: readonly BlockListItem[],
  staged: { has(id: string): boolean },
  committedIds: readonly string[],
): ResolvedBlock[] {
  const committed = new Set(committedIds);
  return items.map(({ kind, id }) => {
    const inStaged = staged.has(id);
    const inCommitted = committed.has(id);
    if (kind !== 'committed' && inStaged) return { id, from: 'staged' };
    if (kind !== 'uncommitted' && inCommitted) return { id, from: 'committed' };
    throw new StorageError('InvalidBlockList', `block ${id} (${kind}) cannot be resolved`);
  });
}
