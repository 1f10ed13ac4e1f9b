import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { BlockListItem, CacheEntry, CacheStorage, EntryIdentity } from './types.js';

/** What a backend's test file hands to the contract suite, fresh for every test. */
export interface StorageFixture {
  readonly storage: CacheStorage;
  /**
   * For persistent backends: closes the current instance and opens the same data again.
   * After it, `cleanup` must close the reopened instance.
   */
  readonly reopen?: () => Promise<CacheStorage>;
  /** Closes the (latest) instance and removes its data. */
  readonly cleanup: () => Promise<void>;
}

const T0 = Date.UTC(2026, 10, 26, 12, 0, 0);
const REPO = '1001';
const SCOPE = 'refs/heads/main';
const VERSION = 'c242501c19ada3dcced7a83b074ccb8e79f816602d4125493924624b38591de2';

const ident = (key: string, over: Partial<EntryIdentity> = {}): EntryIdentity => ({
  repositoryId: REPO,
  scope: SCOPE,
  key,
  version: VERSION,
  ...over,
});

/** A body stream that delivers `data` in chunks of `chunkSize` bytes. */
function body(data: Buffer | string, chunkSize = 7): Readable {
  const buf = typeof data === 'string' ? Buffer.from(data) : data;
  const chunks: Buffer[] = [];
  for (let i = 0; i < buf.length; i += chunkSize) chunks.push(buf.subarray(i, i + chunkSize));
  return Readable.from(chunks);
}

async function read(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** Block ids in the shapes the real clients send. */
const jsId = (i: number) =>
  Buffer.from(`3f2504e0-4f89-11d3-9a0c-0305e82c3301${String(i).padStart(12, '0')}`).toString('base64');
const goId = (i: number) => {
  const b = Buffer.alloc(64);
  Buffer.from('fb1c3e0a9d2b4c7e8f6a5b4c3d2e1f00', 'hex').copy(b);
  b.writeUInt32BE(i, 16);
  return b.toString('base64');
};
const rsId = (i: number) => {
  const b = Buffer.alloc(16, 0xfb);
  b.writeUInt32BE(i, 12);
  return b.toString('base64');
};

const latest = (...ids: string[]): BlockListItem[] => ids.map((id) => ({ kind: 'latest', id }));

/**
 * The one contract every `CacheStorage` backend passes. Call it from a backend's test file:
 * `describeStorageContract('memory', async () => ({ storage: createMemoryStorage(), cleanup: … }))`.
 */
export interface ContractOptions {
  /** The backend keeps its data across a reopen (fixtures then provide `reopen`). Default false. */
  readonly persistent?: boolean;
}

export function describeStorageContract(
  name: string,
  create: () => Promise<StorageFixture>,
  { persistent = false }: ContractOptions = {},
): void {
  describe(`CacheStorage contract: ${name}`, () => {
    let fixture: StorageFixture;
    let s: CacheStorage;

    beforeEach(async () => {
      fixture = await create();
      s = fixture.storage;
    });
    afterEach(async () => {
      await fixture.cleanup();
    });

    const reserve = (key: string, over: Partial<EntryIdentity> = {}, now = T0): CacheEntry => {
      const e = s.reserveEntry(ident(key, over), now);
      if (!e) throw new Error(`identity ${key} already exists`);
      return e;
    };
    /** Reserve + Put Blob + Finalize. */
    const save = async (key: string, over: Partial<EntryIdentity> = {}, content = `content of ${key}`) => {
      const e = reserve(key, over);
      await s.putBlob(e.blobId, body(content), Buffer.byteLength(content), T0 + 1);
      return s.commitEntry(e.id, Buffer.byteLength(content), T0 + 2);
    };
    const content = async (blobId: string) => read((await s.openBlob(blobId)).stream);
    const expectCode = async (p: Promise<unknown>, code: string) => {
      await expect(p).rejects.toMatchObject({ name: 'StorageError', code });
    };
    const keyOf = (e: CacheEntry | undefined) => e?.key;

    it('names its kind', () => {
      expect(typeof s.kind).toBe('string');
      expect(s.kind.length).toBeGreaterThan(0);
    });

    describe('entries', () => {
      it('reserves a pending entry with a fresh id and an opaque, URL-safe blob id', () => {
        const e = reserve('npm-Linux-abc', {}, T0 + 5);
        expect(e).toEqual({
          ...ident('npm-Linux-abc'),
          id: expect.any(Number),
          blobId: expect.stringMatching(/^[A-Za-z0-9._-]{16,}$/),
          state: 'pending',
          sizeBytes: 0,
          createdAt: T0 + 5,
          committedAt: 0,
          lastAccessedAt: T0 + 5,
          downloadUrlExpiresAt: 0,
        });
        expect(e.blobId).not.toContain('npm');
        expect(s.getEntry(e.id)).toEqual(e);
        expect(s.findEntry(ident('npm-Linux-abc'))).toEqual(e);
        expect(s.findEntryByBlobId(e.blobId)).toEqual(e);
      });

      it('refuses an identity that exists, pending or committed', async () => {
        const pending = reserve('k');
        expect(s.reserveEntry(ident('k'), T0 + 1)).toBeUndefined();
        const committed = await save('c');
        expect(s.reserveEntry(ident('c'), T0 + 1)).toBeUndefined();
        expect(s.getEntry(pending.id)?.state).toBe('pending');
        expect(s.getEntry(committed.id)?.state).toBe('committed');
      });

      it('treats every part of the identity as exact and case-sensitive', () => {
        const base = reserve('k');
        const others = [
          reserve('K'),
          reserve('k ', {}),
          reserve('k', { version: `${VERSION}x` }),
          reserve('k', { scope: 'refs/heads/dev' }),
          reserve('k', { repositoryId: '1002' }),
        ];
        const ids = new Set([base.id, ...others.map((e) => e.id)]);
        const blobIds = new Set([base.blobId, ...others.map((e) => e.blobId)]);
        expect(ids.size).toBe(6);
        expect(blobIds.size).toBe(6);
      });

      it('hands out unique, increasing ids that are never reused', () => {
        const ids = Array.from({ length: 25 }, (_, i) => reserve(`k${i}`).id);
        for (let i = 1; i < ids.length; i++) expect(ids[i]!).toBeGreaterThan(ids[i - 1]!);
        const last = ids[ids.length - 1]!;
        s.deleteEntry(last, T0);
        const next = reserve('k24').id;
        expect(next).toBeGreaterThan(last);
      });

      it('returns undefined for unknown ids, identities and blob ids', () => {
        expect(s.getEntry(424242)).toBeUndefined();
        expect(s.findEntry(ident('nope'))).toBeUndefined();
        expect(s.findEntryByBlobId('0123456789abcdef0123456789abcdef')).toBeUndefined();
      });

      it('commits an entry with its size and times', () => {
        const e = reserve('k');
        const c = s.commitEntry(e.id, 1234, T0 + 9);
        expect(c).toEqual({
          ...e,
          state: 'committed',
          sizeBytes: 1234,
          committedAt: T0 + 9,
          lastAccessedAt: T0 + 9,
        });
        expect(s.getEntry(e.id)).toEqual(c);
        expect(() => s.commitEntry(424242, 1, T0)).toThrow();
      });

      it('touches: last access moves, the URL expiry only grows', async () => {
        const e = await save('k');
        s.touchEntry(e.id, T0 + 100, T0 + 10_000);
        expect(s.getEntry(e.id)).toMatchObject({
          lastAccessedAt: T0 + 100,
          downloadUrlExpiresAt: T0 + 10_000,
        });
        s.touchEntry(e.id, T0 + 200, T0 + 5_000);
        expect(s.getEntry(e.id)).toMatchObject({
          lastAccessedAt: T0 + 200,
          downloadUrlExpiresAt: T0 + 10_000,
        });
        s.touchEntry(424242, T0, T0); // unknown: no-op
      });

      it('lists entries in id order, filtered by repository, state and creation time', async () => {
        const a = reserve('a', {}, T0);
        const b = await save('b');
        const c = reserve('c', { repositoryId: '1002' }, T0 + 50);
        const d = reserve('d', {}, T0 + 100);
        const ids = (list: CacheEntry[]) => list.map((e) => e.id);
        expect(ids(s.listEntries())).toEqual([a.id, b.id, c.id, d.id]);
        expect(ids(s.listEntries({}))).toEqual([a.id, b.id, c.id, d.id]);
        expect(ids(s.listEntries({ repositoryId: REPO }))).toEqual([a.id, b.id, d.id]);
        expect(ids(s.listEntries({ state: 'pending' }))).toEqual([a.id, c.id, d.id]);
        expect(ids(s.listEntries({ state: 'committed' }))).toEqual([b.id]);
        expect(ids(s.listEntries({ createdBefore: T0 + 50 }))).toEqual([a.id, b.id]);
        expect(
          ids(s.listEntries({ repositoryId: '1002', state: 'pending', createdBefore: T0 + 51 })),
        ).toEqual([c.id]);
        expect(s.listEntries({ repositoryId: '9' })).toEqual([]);
      });
    });

    describe('lookups', () => {
      it('finds committed entries by exact key; pending ones are invisible', async () => {
        const p = reserve('pending-key');
        expect(s.findCommittedExact(REPO, SCOPE, VERSION, 'pending-key')).toBeUndefined();
        expect(s.findCommittedByPrefix(REPO, SCOPE, VERSION, 'pending')).toBeUndefined();
        s.commitEntry(p.id, 0, T0 + 1);
        expect(s.findCommittedExact(REPO, SCOPE, VERSION, 'pending-key')?.id).toBe(p.id);
        expect(s.findCommittedByPrefix(REPO, SCOPE, VERSION, 'pending')?.id).toBe(p.id);
        expect(s.findCommittedExact(REPO, SCOPE, VERSION, 'pending')).toBeUndefined();
      });

      it('the newest by creation wins among prefix matches, not the lexically largest', async () => {
        await save('index-buildkit-1-f921bd05#9');
        await save('index-buildkit-1-f921bd05#10');
        expect(keyOf(s.findCommittedByPrefix(REPO, SCOPE, VERSION, 'index-buildkit-1-f921bd05#'))).toBe(
          'index-buildkit-1-f921bd05#10',
        );
        await save('z#10');
        await save('z#9');
        expect(keyOf(s.findCommittedByPrefix(REPO, SCOPE, VERSION, 'z#'))).toBe('z#9');
      });

      it('orders by creation (reservation), not by commit time', async () => {
        const older = reserve('p-older');
        const newer = reserve('p-newer');
        await s.putBlob(newer.blobId, body('n'), 1, T0);
        s.commitEntry(newer.id, 1, T0 + 1);
        await s.putBlob(older.blobId, body('o'), 1, T0 + 2);
        s.commitEntry(older.id, 1, T0 + 3);
        expect(keyOf(s.findCommittedByPrefix(REPO, SCOPE, VERSION, 'p-'))).toBe('p-newer');
      });

      it('a newer pending entry does not shadow an older committed one', async () => {
        await save('npm-a');
        reserve('npm-b');
        expect(keyOf(s.findCommittedByPrefix(REPO, SCOPE, VERSION, 'npm-'))).toBe('npm-a');
      });

      it('passes the C-43 vector (go-actions-cache TestPartialKeyOrder)', async () => {
        const P = 'test-partial-key-order-';
        await save(`${P}foo22`);
        await save(`${P}fo`);
        await save(`${P}foo1`);
        const lookup = (k: string) =>
          keyOf(
            s.findCommittedExact(REPO, SCOPE, VERSION, k) ?? s.findCommittedByPrefix(REPO, SCOPE, VERSION, k),
          );
        expect(lookup(`${P}foo`)).toBe(`${P}foo1`);
        expect(lookup(P)).toBe(`${P}foo1`);
        expect(lookup(`${P}foo3`)).toBeUndefined();
        expect(lookup(`${P}foo2`)).toBe(`${P}foo22`);
      });

      it('keeps versions, scopes and repositories apart', async () => {
        const mine = await save('key-1');
        await save('key-2', { version: 'other' });
        await save('key-3', { scope: 'refs/heads/dev' });
        await save('key-4', { repositoryId: '1002' });
        await save('key-1', { version: 'other' });
        expect(s.findCommittedExact(REPO, SCOPE, VERSION, 'key-1')?.id).toBe(mine.id);
        expect(s.findCommittedByPrefix(REPO, SCOPE, VERSION, 'key-')?.id).toBe(mine.id);
        expect(s.findCommittedExact(REPO, SCOPE, VERSION, 'key-2')).toBeUndefined();
        expect(s.findCommittedExact(REPO, 'refs/heads/dev', VERSION, 'key-3')?.key).toBe('key-3');
        expect(s.findCommittedByPrefix(REPO, 'refs/heads/dev', VERSION, 'key-')?.key).toBe('key-3');
        expect(s.findCommittedByPrefix('1002', SCOPE, VERSION, 'key-')?.key).toBe('key-4');
        expect(s.findCommittedByPrefix('1002', SCOPE, 'other', 'key-')).toBeUndefined();
        expect(s.findCommittedByPrefix(REPO, SCOPE, 'other', 'key-')?.key).toBe('key-1');
      });

      it('matches prefixes literally, at code point boundaries', async () => {
        const keys = [
          'a_b',
          'a%c',
          'aXb',
          'é1',
          'ê',
          'x\u{d7ff}1',
          'x\u{e000}',
          '😀1',
          '😁',
          'y\u{10ffff}',
          'z',
        ];
        for (const k of keys) await save(k);
        const find = (p: string) => keyOf(s.findCommittedByPrefix(REPO, SCOPE, VERSION, p));
        expect(find('a_')).toBe('a_b');
        expect(find('a%')).toBe('a%c');
        expect(find('a')).toBe('aXb');
        expect(find('é')).toBe('é1');
        expect(find('x\u{d7ff}')).toBe('x\u{d7ff}1');
        expect(find('x')).toBe('x\u{e000}');
        expect(find('😀')).toBe('😀1');
        expect(find('y\u{10ffff}')).toBe('y\u{10ffff}');
        expect(find('y')).toBe('y\u{10ffff}');
        expect(find('\u{10ffff}')).toBeUndefined();
        expect(find('')).toBe('z');
        expect(find('b')).toBeUndefined();
      });

      it('finds the newest match among many entries, whichever way the data is skewed', async () => {
        // Many old matches, then many newer non-matches: the answer is deep in both directions.
        for (let i = 0; i < 300; i++) s.commitEntry(reserve(`old-${i}`).id, 0, T0);
        for (let i = 0; i < 300; i++) s.commitEntry(reserve(`new-${i}`).id, 0, T0);
        expect(keyOf(s.findCommittedByPrefix(REPO, SCOPE, VERSION, 'old-'))).toBe('old-299');
        expect(keyOf(s.findCommittedByPrefix(REPO, SCOPE, VERSION, 'old-1'))).toBe('old-199');
        expect(keyOf(s.findCommittedByPrefix(REPO, SCOPE, VERSION, 'new-2'))).toBe('new-299');
        expect(keyOf(s.findCommittedByPrefix(REPO, SCOPE, VERSION, 'o'))).toBe('old-299');
        expect(keyOf(s.findCommittedByPrefix(REPO, SCOPE, VERSION, ''))).toBe('new-299');
        expect(s.findCommittedByPrefix(REPO, SCOPE, VERSION, 'old-3000')).toBeUndefined();
      });
    });

    describe('usage and eviction order', () => {
      /** Reserve + commit (no blob) with a size, then a last access at `accessedAt`. */
      const entry = (
        key: string,
        sizeBytes: number,
        accessedAt: number,
        over: Partial<EntryIdentity> = {},
      ) => {
        const e = s.commitEntry(reserve(key, over).id, sizeBytes, T0);
        s.touchEntry(e.id, accessedAt, 0);
        return s.getEntry(e.id)!;
      };
      const keys = (list: CacheEntry[]) => list.map((e) => e.key);

      it('adds up committed entries per repository; pending ones count for nothing', async () => {
        expect(s.repositoryUsage(REPO)).toEqual({ repositoryId: REPO, sizeBytes: 0, count: 0 });
        reserve('pending');
        await save('a', {}, '12345');
        await save('b', { scope: 'refs/heads/dev' }, '123');
        await save('c', { repositoryId: '1002' }, '1234567');
        expect(s.repositoryUsage(REPO)).toEqual({ repositoryId: REPO, sizeBytes: 8, count: 2 });
        expect(s.repositoryUsage('1002')).toEqual({ repositoryId: '1002', sizeBytes: 7, count: 1 });
        expect(s.listRepositoryUsage()).toEqual([
          { repositoryId: REPO, sizeBytes: 8, count: 2 },
          { repositoryId: '1002', sizeBytes: 7, count: 1 },
        ]);
      });

      it('follows commits and deletes of any kind', async () => {
        const a = await save('a', {}, '12345');
        const p = reserve('p');
        s.commitEntry(p.id, 100, T0 + 5);
        expect(s.repositoryUsage(REPO)).toMatchObject({ sizeBytes: 105, count: 2 });
        s.deleteEntry(a.id, T0 + 10);
        expect(s.repositoryUsage(REPO)).toMatchObject({ sizeBytes: 100, count: 1 });
        s.deleteEntry(reserve('pending').id, T0 + 10);
        expect(s.repositoryUsage(REPO)).toMatchObject({ sizeBytes: 100, count: 1 });
        s.deleteEntry(p.id, T0 + 10);
        expect(s.repositoryUsage(REPO)).toMatchObject({ sizeBytes: 0, count: 0 });
        expect(s.listRepositoryUsage()).toEqual([]);
      });

      it('lists a repository least recently accessed first, ties by lower id, committed only', () => {
        entry('new', 1, T0 + 300);
        entry('old', 1, T0 + 100);
        entry('tie-1', 1, T0 + 200);
        entry('tie-2', 1, T0 + 200);
        entry('elsewhere', 1, T0, { repositoryId: '1002' });
        reserve('pending', {}, T0 - 1000);
        expect(keys(s.listLeastRecentlyUsed(REPO, 10))).toEqual(['old', 'tie-1', 'tie-2', 'new']);
        expect(keys(s.listLeastRecentlyUsed(REPO, 2))).toEqual(['old', 'tie-1']);
        expect(s.listLeastRecentlyUsed(REPO, 0)).toEqual([]);
        expect(keys(s.listLeastRecentlyUsed('1002', 10))).toEqual(['elsewhere']);
        expect(s.listLeastRecentlyUsed('9', 10)).toEqual([]);
        expect(s.listLeastRecentlyUsed(REPO, 1)[0]).toEqual(s.findEntry(ident('old')));
      });

      it('lists idle entries of every repository accessed strictly before a time, oldest first', () => {
        entry('recent', 1, T0 + 500);
        entry('edge', 1, T0 + 400);
        entry('b', 1, T0 + 100, { repositoryId: '1002' });
        entry('a', 1, T0 + 100);
        entry('oldest', 1, T0 + 50, { scope: 'refs/heads/dev' });
        reserve('pending', {}, T0);
        expect(keys(s.listIdleEntries(T0 + 400, 10))).toEqual(['oldest', 'b', 'a']);
        expect(keys(s.listIdleEntries(T0 + 401, 10))).toEqual(['oldest', 'b', 'a', 'edge']);
        expect(keys(s.listIdleEntries(T0 + 401, 2))).toEqual(['oldest', 'b']);
        expect(s.listIdleEntries(T0 + 50, 10)).toEqual([]);
      });

      it('a hit moves an entry to the end of the eviction order', () => {
        const first = entry('first', 1, T0 + 1);
        entry('second', 1, T0 + 2);
        s.touchEntry(first.id, T0 + 3, 0);
        expect(keys(s.listLeastRecentlyUsed(REPO, 10))).toEqual(['second', 'first']);
        expect(keys(s.listIdleEntries(T0 + 3, 10))).toEqual(['second']);
      });

      if (persistent) {
        it('keeps usage across a reopen', async () => {
          await save('a', {}, '12345');
          await save('b', { repositoryId: '1002' }, '12');
          if (!fixture.reopen) throw new Error('a persistent backend must provide reopen() in its fixture');
          s = await fixture.reopen();
          expect(s.listRepositoryUsage()).toEqual([
            { repositoryId: REPO, sizeBytes: 5, count: 1 },
            { repositoryId: '1002', sizeBytes: 2, count: 1 },
          ]);
          expect(keys(s.listLeastRecentlyUsed(REPO, 5))).toEqual(['a']);
        });

        it('keeps a hit recorded right before close across a reopen', async () => {
          const e = await save('a');
          s.touchEntry(e.id, T0 + 77, T0 + 9_000);
          if (!fixture.reopen) throw new Error('a persistent backend must provide reopen() in its fixture');
          s = await fixture.reopen();
          expect(s.getEntry(e.id)).toMatchObject({
            lastAccessedAt: T0 + 77,
            downloadUrlExpiresAt: T0 + 9_000,
          });
        });
      }
    });

    describe('delete and sweep', () => {
      it('deletes an entry and frees its identity; a blob without issued URLs goes at once', async () => {
        const e = await save('k');
        s.deleteEntry(e.id, T0 + 10);
        expect(s.getEntry(e.id)).toBeUndefined();
        expect(s.findEntry(ident('k'))).toBeUndefined();
        expect(s.findEntryByBlobId(e.blobId)).toBeUndefined();
        expect(s.findCommittedExact(REPO, SCOPE, VERSION, 'k')).toBeUndefined();
        expect(s.getBlobProperties(e.blobId)).toBeUndefined();
        await expectCode(s.openBlob(e.blobId), 'BlobNotFound');
        const again = reserve('k');
        expect(again.id).toBeGreaterThan(e.id);
        expect(again.blobId).not.toBe(e.blobId);
        s.deleteEntry(424242, T0); // unknown: no-op
        expect(await s.sweep(T0 + 10)).toBe(0);
      });

      it('keeps a deleted entry’s blob readable until its last download URL expires', async () => {
        const e = await save('k', {}, 'still here');
        s.touchEntry(e.id, T0 + 10, T0 + 1_000);
        s.deleteEntry(e.id, T0 + 20);
        expect(s.getEntry(e.id)).toBeUndefined();
        expect(s.getBlobProperties(e.blobId)?.size).toBe(10);
        expect((await content(e.blobId)).toString()).toBe('still here');
        expect(await s.sweep(T0 + 999)).toBe(0);
        expect((await content(e.blobId)).toString()).toBe('still here');
        expect(await s.sweep(T0 + 1_000)).toBe(1);
        expect(s.getBlobProperties(e.blobId)).toBeUndefined();
        await expectCode(s.openBlob(e.blobId), 'BlobNotFound');
        expect(await s.sweep(T0 + 2_000)).toBe(0);
      });

      it('deletes a blob whose URLs already expired at once', async () => {
        const e = await save('k');
        s.touchEntry(e.id, T0 + 10, T0 + 100);
        s.deleteEntry(e.id, T0 + 100);
        expect(s.getBlobProperties(e.blobId)).toBeUndefined();
      });

      it('drops the staged blocks of a deleted pending entry', async () => {
        const e = reserve('k');
        await s.putBlock(e.blobId, rsId(0), body('abc'), 3);
        s.deleteEntry(e.id, T0);
        await expectCode(
          s.commitBlockList(e.blobId, [{ kind: 'uncommitted', id: rsId(0) }], T0),
          'InvalidBlockList',
        );
        expect(s.getBlobProperties(e.blobId)).toBeUndefined();
      });

      it('sweeps a blob written after its entry was deleted', async () => {
        const e = reserve('k');
        s.deleteEntry(e.id, T0);
        await s.putBlob(e.blobId, body('late'), 4, T0 + 1);
        expect(await s.sweep(T0 + 2)).toBe(1);
        expect(s.getBlobProperties(e.blobId)).toBeUndefined();
      });

      it('never sweeps the blob of a live entry', async () => {
        const pending = reserve('p');
        await s.putBlob(pending.blobId, body('p'), 1, T0);
        const committed = await save('c');
        expect(await s.sweep(T0 + 365 * 86_400_000)).toBe(0);
        expect((await content(pending.blobId)).toString()).toBe('p');
        expect((await content(committed.blobId)).toString()).toBe('content of c');
      });
    });

    describe('Put Blob', () => {
      it('has no content before the first commit', async () => {
        const e = reserve('k');
        expect(s.getBlobProperties(e.blobId)).toBeUndefined();
        await expectCode(s.openBlob(e.blobId), 'BlobNotFound');
      });

      it('commits content and properties', async () => {
        const e = reserve('k');
        const data = randomBytes(100_000);
        const props = await s.putBlob(e.blobId, body(data, 8191), data.length, T0 + 3);
        expect(props).toEqual({
          size: 100_000,
          etag: expect.stringMatching(/^"0x[0-9A-F]+"$/),
          lastModified: T0 + 3,
          createdAt: T0 + 3,
        });
        expect(s.getBlobProperties(e.blobId)).toEqual(props);
        const opened = await s.openBlob(e.blobId);
        expect(opened.properties).toEqual(props);
        expect((await read(opened.stream)).equals(data)).toBe(true);
      });

      it('commits an empty blob', async () => {
        const e = reserve('k');
        const props = await s.putBlob(e.blobId, body(''), 0, T0);
        expect(props.size).toBe(0);
        expect((await content(e.blobId)).length).toBe(0);
      });

      it('replaces content with a new ETag and keeps the creation time', async () => {
        const e = reserve('k');
        const first = await s.putBlob(e.blobId, body('first'), 5, T0);
        const second = await s.putBlob(e.blobId, body('second!'), 7, T0 + 50);
        expect(second).toMatchObject({ size: 7, lastModified: T0 + 50, createdAt: T0 });
        expect(second.etag).not.toBe(first.etag);
        expect((await content(e.blobId)).toString()).toBe('second!');
      });

      it('drops staged blocks (C-62)', async () => {
        const e = reserve('k');
        await s.putBlock(e.blobId, rsId(0), body('staged'), 6);
        await s.putBlob(e.blobId, body('blob'), 4, T0);
        await expectCode(s.commitBlockList(e.blobId, latest(rsId(0)), T0 + 1), 'InvalidBlockList');
        expect((await content(e.blobId)).toString()).toBe('blob');
      });

      it.each([
        ['shorter', 'abc', 4],
        ['longer', 'abcde', 4],
      ])('fails a %s body with IncompleteBody and commits nothing', async (_, data, length) => {
        const e = reserve('k');
        await expectCode(s.putBlob(e.blobId, body(data, 1), length, T0), 'IncompleteBody');
        expect(s.getBlobProperties(e.blobId)).toBeUndefined();
        const before = await s.putBlob(e.blobId, body('good'), 4, T0 + 1);
        await expectCode(s.putBlob(e.blobId, body(data, 1), length, T0 + 2), 'IncompleteBody');
        expect(s.getBlobProperties(e.blobId)).toEqual(before);
        expect((await content(e.blobId)).toString()).toBe('good');
      });

      it('passes on the error of a failing body and commits nothing', async () => {
        const e = reserve('k');
        const failing = new Readable({
          read() {
            this.push(Buffer.from('abc'));
            this.destroy(new Error('socket hang up'));
          },
        });
        await expect(s.putBlob(e.blobId, failing, 10, T0)).rejects.toThrow();
        expect(s.getBlobProperties(e.blobId)).toBeUndefined();
      });
    });

    describe('Put Block and Put Block List', () => {
      it('staging leaves the blob absent, and a commit concatenates in list order (C-63, C-66)', async () => {
        const e = reserve('k');
        const parts = [randomBytes(3000), randomBytes(1), randomBytes(70_000)];
        for (const i of [2, 0, 1])
          await s.putBlock(e.blobId, jsId(i), body(parts[i]!, 4096), parts[i]!.length);
        expect(s.getBlobProperties(e.blobId)).toBeUndefined();
        await expectCode(s.openBlob(e.blobId), 'BlobNotFound');
        const props = await s.commitBlockList(e.blobId, latest(jsId(0), jsId(1), jsId(2)), T0 + 7);
        expect(props).toEqual({
          size: 73_001,
          etag: expect.stringMatching(/^"0x[0-9A-F]+"$/),
          lastModified: T0 + 7,
          createdAt: T0 + 7,
        });
        expect((await content(e.blobId)).equals(Buffer.concat(parts))).toBe(true);
      });

      it('staging never changes the committed content or ETag', async () => {
        const e = reserve('k');
        const props = await s.putBlob(e.blobId, body('committed'), 9, T0);
        await s.putBlock(e.blobId, goId(0), body('staged'), 6);
        expect(s.getBlobProperties(e.blobId)).toEqual(props);
        expect((await content(e.blobId)).toString()).toBe('committed');
      });

      it('re-staging an id replaces its data (C-65)', async () => {
        const e = reserve('k');
        await s.putBlock(e.blobId, goId(0), body('old data'), 8);
        await s.putBlock(e.blobId, goId(0), body('new'), 3);
        await s.commitBlockList(e.blobId, latest(goId(0)), T0);
        expect((await content(e.blobId)).toString()).toBe('new');
      });

      it('a failed re-stage keeps the earlier data', async () => {
        const e = reserve('k');
        await s.putBlock(e.blobId, goId(0), body('kept'), 4);
        await expectCode(s.putBlock(e.blobId, goId(0), body('xy'), 3), 'IncompleteBody');
        await expectCode(s.putBlock(e.blobId, goId(1), body('xyzw'), 3), 'IncompleteBody');
        await expectCode(s.commitBlockList(e.blobId, latest(goId(1)), T0), 'InvalidBlockList');
        await s.commitBlockList(e.blobId, latest(goId(0)), T0);
        expect((await content(e.blobId)).toString()).toBe('kept');
      });

      it('resolves Committed, Uncommitted and Latest like Azure (C-69)', async () => {
        const e = reserve('k');
        const [A, B, C] = [rsId(1), rsId(2), rsId(3)];
        await s.putBlock(e.blobId, A, body('a0'), 2);
        await s.putBlock(e.blobId, B, body('b0'), 2);
        await s.commitBlockList(e.blobId, latest(A, B), T0);
        await s.putBlock(e.blobId, A, body('A1'), 2);
        await s.putBlock(e.blobId, C, body('C1'), 2);
        // Uncommitted B: B is only committed. Committed C: C is only staged.
        await expectCode(
          s.commitBlockList(e.blobId, [{ kind: 'uncommitted', id: B }], T0),
          'InvalidBlockList',
        );
        await expectCode(s.commitBlockList(e.blobId, [{ kind: 'committed', id: C }], T0), 'InvalidBlockList');
        await s.commitBlockList(
          e.blobId,
          [
            { kind: 'committed', id: A },
            { kind: 'latest', id: A },
            { kind: 'uncommitted', id: C },
            { kind: 'latest', id: B },
            { kind: 'committed', id: B },
          ],
          T0 + 1,
        );
        expect((await content(e.blobId)).toString()).toBe('a0A1C1b0b0');
        // The committed list is now exactly that list: A (twice, different data), C, B (twice).
        await s.commitBlockList(e.blobId, [{ kind: 'committed', id: C }, ...latest(B)], T0 + 2);
        expect((await content(e.blobId)).toString()).toBe('C1b0');
      });

      it('an unknown id fails the whole list and changes nothing (C-67)', async () => {
        const e = reserve('k');
        await s.putBlock(e.blobId, jsId(0), body('zero'), 4);
        const before = await s.commitBlockList(e.blobId, latest(jsId(0)), T0);
        await s.putBlock(e.blobId, jsId(1), body('one'), 3);
        await s.putBlock(e.blobId, jsId(2), body('two'), 3);
        await expectCode(
          s.commitBlockList(e.blobId, latest(jsId(1), jsId(9), jsId(2)), T0 + 1),
          'InvalidBlockList',
        );
        expect(s.getBlobProperties(e.blobId)).toEqual(before);
        expect((await content(e.blobId)).toString()).toBe('zero');
        // The staged blocks are all still there.
        await s.commitBlockList(
          e.blobId,
          [...latest(jsId(2), jsId(0)), { kind: 'uncommitted', id: jsId(1) }],
          T0 + 2,
        );
        expect((await content(e.blobId)).toString()).toBe('twozeroone');
      });

      it('drops the blocks left out of a commit', async () => {
        const e = reserve('k');
        for (const i of [0, 1, 2]) await s.putBlock(e.blobId, jsId(i), body(`b${i}`), 2);
        await s.commitBlockList(e.blobId, latest(jsId(0), jsId(2)), T0);
        await expectCode(s.commitBlockList(e.blobId, latest(jsId(1)), T0 + 1), 'InvalidBlockList');
        expect((await content(e.blobId)).toString()).toBe('b0b2');
      });

      it('repeating a successful commit gives identical content (C-68)', async () => {
        const e = reserve('k');
        const parts = [randomBytes(5000), randomBytes(5000), randomBytes(17)];
        for (const i of [1, 2, 0])
          await s.putBlock(e.blobId, goId(i), body(parts[i]!, 999), parts[i]!.length);
        const ids = [goId(0), goId(1), goId(2)];
        const first = await s.commitBlockList(e.blobId, latest(...ids), T0);
        const second = await s.commitBlockList(e.blobId, latest(...ids), T0 + 5);
        expect(second).toMatchObject({ size: first.size, createdAt: T0, lastModified: T0 + 5 });
        expect(second.etag).not.toBe(first.etag);
        expect((await content(e.blobId)).equals(Buffer.concat(parts))).toBe(true);
      });

      it('an empty list commits an empty blob (C-70)', async () => {
        const e = reserve('k');
        await s.putBlock(e.blobId, rsId(0), body('dropped'), 7);
        const props = await s.commitBlockList(e.blobId, [], T0);
        expect(props.size).toBe(0);
        expect((await content(e.blobId)).length).toBe(0);
        await expectCode(s.commitBlockList(e.blobId, latest(rsId(0)), T0), 'InvalidBlockList');
      });

      it('round-trips JS, GO and RS ids, including + / = characters (C-72)', async () => {
        for (const make of [jsId, goId, rsId]) {
          const e = reserve(`k-${make.name}`);
          const ids = [0, 1, 0xfbff].map(make);
          for (const [i, id] of ids.entries()) await s.putBlock(e.blobId, id, body(`<${i}>`), 3);
          await s.commitBlockList(e.blobId, latest(...ids.reverse()), T0);
          expect((await content(e.blobId)).toString()).toBe('<2><1><0>');
        }
        expect(goId(0xfbff)).toMatch(/[+/]/);
        expect(rsId(0)).toMatch(/=$/);
      });

      it('refuses an id whose length differs from the staged ones, and drains its body (C-64)', async () => {
        const e = reserve('k');
        await s.putBlock(e.blobId, rsId(0), body('ok'), 2);
        const rejected = body(randomBytes(50_000), 1000);
        await expectCode(s.putBlock(e.blobId, jsId(0), rejected, 50_000), 'InvalidBlobOrBlock');
        await finished(rejected);
        await s.putBlock(e.blobId, rsId(1), body('!!'), 2);
        await s.commitBlockList(e.blobId, latest(rsId(0), rsId(1)), T0);
        expect((await content(e.blobId)).toString()).toBe('ok!!');
        // After the commit nothing is staged, so any length is fine again.
        await s.putBlock(e.blobId, goId(0), body('go'), 2);
        await s.commitBlockList(e.blobId, latest(goId(0)), T0 + 1);
        expect((await content(e.blobId)).toString()).toBe('go');
      });

      it('fails short and long block bodies with IncompleteBody and stages nothing', async () => {
        const e = reserve('k');
        await expectCode(s.putBlock(e.blobId, rsId(0), body('ab'), 3), 'IncompleteBody');
        await expectCode(s.putBlock(e.blobId, rsId(1), body('abcd'), 3), 'IncompleteBody');
        await expectCode(s.commitBlockList(e.blobId, latest(rsId(0)), T0), 'InvalidBlockList');
        await expectCode(s.commitBlockList(e.blobId, latest(rsId(1)), T0), 'InvalidBlockList');
        expect(s.getBlobProperties(e.blobId)).toBeUndefined();
      });

      it('handles many blocks', async () => {
        const e = reserve('k');
        const parts = Array.from({ length: 200 }, (_, i) => randomBytes(100 + i));
        for (const [i, p] of parts.entries()) await s.putBlock(e.blobId, goId(i), body(p, 64), p.length);
        const props = await s.commitBlockList(e.blobId, latest(...parts.map((_, i) => goId(i))), T0);
        const all = Buffer.concat(parts);
        expect(props.size).toBe(all.length);
        expect((await content(e.blobId)).equals(all)).toBe(true);
      });
    });

    describe('reading', () => {
      it('reads byte ranges (inclusive ends)', async () => {
        const e = reserve('k');
        const data = randomBytes(3 * 1024 * 1024 + 5);
        await s.putBlob(e.blobId, body(data, 65_536), data.length, T0);
        const range = async (start: number, end: number) => {
          const opened = await s.openBlob(e.blobId, { start, end });
          expect(opened.properties.size).toBe(data.length);
          return read(opened.stream);
        };
        expect((await range(2, 5)).equals(data.subarray(2, 6))).toBe(true);
        expect((await range(0, 0)).equals(data.subarray(0, 1))).toBe(true);
        const last = data.length - 1;
        expect((await range(last, last)).equals(data.subarray(last))).toBe(true);
        expect((await range(1_000_000, last)).equals(data.subarray(1_000_000))).toBe(true);
        expect((await range(0, last)).equals(data)).toBe(true);
      });

      it('reads ranges across block boundaries', async () => {
        const e = reserve('k');
        const parts = [randomBytes(1000), randomBytes(2000), randomBytes(3000)];
        for (const [i, p] of parts.entries()) await s.putBlock(e.blobId, jsId(i), body(p, 512), p.length);
        await s.commitBlockList(e.blobId, latest(jsId(0), jsId(1), jsId(2)), T0);
        const all = Buffer.concat(parts);
        const opened = await s.openBlob(e.blobId, { start: 900, end: 3100 });
        expect((await read(opened.stream)).equals(all.subarray(900, 3101))).toBe(true);
      });

      it('an open stream keeps reading the content as of the call (replace, delete)', async () => {
        const e = reserve('k');
        const v1 = randomBytes(2 * 1024 * 1024);
        const p1 = await s.putBlob(e.blobId, body(v1, 65_536), v1.length, T0);
        const whole = await s.openBlob(e.blobId);
        const ranged = await s.openBlob(e.blobId, { start: 10, end: 19 });
        await s.putBlob(e.blobId, body('v2'), 2, T0 + 1);
        const third = await s.openBlob(e.blobId);
        s.commitEntry(e.id, 2, T0 + 2);
        s.deleteEntry(e.id, T0 + 3);
        expect(s.getBlobProperties(e.blobId)).toBeUndefined();
        expect(whole.properties).toEqual(p1);
        expect((await read(whole.stream)).equals(v1)).toBe(true);
        expect((await read(ranged.stream)).equals(v1.subarray(10, 20))).toBe(true);
        expect((await read(third.stream)).toString()).toBe('v2');
      });
    });

    // Only persistent backends promise this; the memory backend keeps nothing by design.
    if (persistent)
      it('persists entries and blobs across a reopen', async () => {
        if (!fixture.reopen) throw new Error('a persistent backend must provide reopen() in its fixture');
        const a = await save('persist-a', {}, 'alpha');
        const b = reserve('persist-b');
        const parts = [randomBytes(40_000), randomBytes(10)];
        for (const [i, p] of parts.entries()) await s.putBlock(b.blobId, jsId(i), body(p, 4096), p.length);
        const bProps = await s.commitBlockList(b.blobId, latest(jsId(0), jsId(1)), T0 + 3);
        s.commitEntry(b.id, 40_010, T0 + 4);
        s.touchEntry(a.id, T0 + 5, T0 + 600_000);
        const pending = reserve('persist-pending');
        await s.putBlock(pending.blobId, rsId(7), body('staged'), 6);
        const retained = await save('persist-retained', {}, 'retained');
        s.touchEntry(retained.id, T0 + 6, T0 + 1_000);
        s.deleteEntry(retained.id, T0 + 7);
        const newest = reserve('persist-newest');
        s.deleteEntry(newest.id, T0 + 8);
        const before = s.listEntries();
        const aProps = s.getBlobProperties(a.blobId);

        s = await fixture.reopen();

        expect(s.listEntries()).toEqual(before);
        expect(s.getBlobProperties(a.blobId)).toEqual(aProps);
        expect(s.getBlobProperties(b.blobId)).toEqual(bProps);
        expect((await content(a.blobId)).toString()).toBe('alpha');
        expect((await content(b.blobId)).equals(Buffer.concat(parts))).toBe(true);
        expect(s.getEntry(a.id)).toMatchObject({
          lastAccessedAt: T0 + 5,
          downloadUrlExpiresAt: T0 + 600_000,
        });
        expect(keyOf(s.findCommittedByPrefix(REPO, SCOPE, VERSION, 'persist-'))).toBe('persist-b');
        expect(s.findCommittedExact(REPO, SCOPE, VERSION, 'persist-a')?.id).toBe(a.id);
        expect(s.reserveEntry(ident('persist-pending'), T0)).toBeUndefined();
        // Staged blocks of a pending entry survive, and the committed ones can be re-committed.
        await s.commitBlockList(pending.blobId, latest(rsId(7)), T0 + 9);
        expect((await content(pending.blobId)).toString()).toBe('staged');
        await s.commitBlockList(b.blobId, latest(jsId(1), jsId(0)), T0 + 10);
        expect((await content(b.blobId)).equals(Buffer.concat([parts[1]!, parts[0]!]))).toBe(true);
        // A retained blob is still retained, and still swept on time.
        expect((await content(retained.blobId)).toString()).toBe('retained');
        expect(await s.sweep(T0 + 1_000)).toBe(1);
        expect(s.getBlobProperties(retained.blobId)).toBeUndefined();
        // Ids keep increasing, past the deleted newest one too.
        expect(reserve('persist-after').id).toBeGreaterThan(newest.id);
      });
  });
}
