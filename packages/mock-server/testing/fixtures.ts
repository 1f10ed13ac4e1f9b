import { Readable } from 'node:stream';
import type { BlockListItem, EntryIdentity } from '../src/storage/types.js';

/** What the contract suites share: fixture shapes, identities, bodies and block ids. */

/** What a backend's test file hands to a contract suite, fresh for every test. */
export interface Fixture<T> {
  readonly store: T;
  /**
   * For persistent backends: closes the current instance and opens the same data again.
   * After it, `cleanup` must close the reopened instance.
   */
  readonly reopen?: () => Promise<T>;
  /** Closes the (latest) instance and removes its data. */
  readonly cleanup: () => Promise<void>;
}

export interface ContractOptions {
  /** The backend keeps its data across a reopen (fixtures then provide `reopen`). Default false. */
  readonly persistent?: boolean;
  /**
   * Blob stores only: the service stamps times itself (a real blob service), so `lastModified`
   * and `createdAt` are checked for order and equality, not against the `now` passed in.
   */
  readonly serverTime?: boolean;
}

export const T0 = Date.UTC(2026, 10, 26, 12, 0, 0);
export const REPO = '1001';
export const SCOPE = 'refs/heads/main';
export const VERSION = 'c242501c19ada3dcced7a83b074ccb8e79f816602d4125493924624b38591de2';

export const ident = (key: string, over: Partial<EntryIdentity> = {}): EntryIdentity => ({
  repositoryId: REPO,
  scope: SCOPE,
  key,
  version: VERSION,
  ...over,
});

/** A body stream that delivers `data` in chunks of `chunkSize` bytes. */
export function body(data: Buffer | string, chunkSize = 7): Readable {
  const buf = typeof data === 'string' ? Buffer.from(data) : data;
  const chunks: Buffer[] = [];
  for (let i = 0; i < buf.length; i += chunkSize) chunks.push(buf.subarray(i, i + chunkSize));
  return Readable.from(chunks);
}

export async function read(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** Block ids in the shapes the real clients send: @actions/cache (48 bytes), go-actions-cache (64), OpenDAL (16). */
export const jsId = (i: number) =>
  Buffer.from(`3f2504e0-4f89-11d3-9a0c-0305e82c3301${String(i).padStart(12, '0')}`).toString('base64');
export const goId = (i: number) => {
  const b = Buffer.alloc(64);
  Buffer.from('fb1c3e0a9d2b4c7e8f6a5b4c3d2e1f00', 'hex').copy(b);
  b.writeUInt32BE(i, 16);
  return b.toString('base64');
};
export const rsId = (i: number) => {
  const b = Buffer.alloc(16, 0xfb);
  b.writeUInt32BE(i, 12);
  return b.toString('base64');
};

export const latest = (...ids: string[]): BlockListItem[] => ids.map((id) => ({ kind: 'latest', id }));
