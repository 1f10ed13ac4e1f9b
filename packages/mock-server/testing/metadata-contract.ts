import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { CacheEntry, EntryIdentity, MetadataStore } from '../src/storage/types.js';
import { type ContractOptions, type Fixture, ident, REPO, SCOPE, T0, VERSION } from './fixtures.js';

export type { ContractOptions, Fixture } from './fixtures.js';

/**
 * The one contract every `MetadataStore` backend passes. Call it from a backend's test file:
 * `describeMetadataContract('memory', async () => ({ store: createMemoryMetadataStore(), cleanup: … }))`.
 */
export function describeMetadataContract(
  name: string,
  create: () => Promise<Fixture<MetadataStore>>,
  { persistent = false }: ContractOptions = {},
): void {
  describe(`MetadataStore contract: ${name}`, () => {
    let fixture: Fixture<MetadataStore>;
    let m: MetadataStore;

    beforeEach(async () => {
      fixture = await create();
      m = fixture.store;
    });
    afterEach(async () => {
      await fixture.cleanup();
    });

    const reserve = async (key: string, over: Partial<EntryIdentity> = {}, now = T0): Promise<CacheEntry> => {
      const e = await m.reserveEntry(ident(key, over), now);
      if (!e) throw new Error(`identity ${key} already exists`);
      return e;
    };
    /** Reserve + Finalize with the content's size (the metadata side of a save). */
    const save = async (key: string, over: Partial<EntryIdentity> = {}, content = `content of ${key}`) => {
      const e = await reserve(key, over);
      return m.commitEntry(e.id, Buffer.byteLength(content), T0 + 2);
    };
    const keyOf = (e: CacheEntry | undefined) => e?.key;

    it('names its kind', () => {
      expect(typeof m.kind).toBe('string');
      expect(m.kind.length).toBeGreaterThan(0);
    });

    describe('entries', () => {
      it('reserves a pending entry with a fresh id and an opaque, URL-safe blob id', async () => {
        const e = await reserve('npm-Linux-abc', {}, T0 + 5);
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
        expect(await m.getEntry(e.id)).toEqual(e);
        expect(await m.findEntry(ident('npm-Linux-abc'))).toEqual(e);
        expect(await m.findEntryByBlobId(e.blobId)).toEqual(e);
      });

      it('refuses an identity that exists, pending or committed', async () => {
        const pending = await reserve('k');
        expect(await m.reserveEntry(ident('k'), T0 + 1)).toBeUndefined();
        const committed = await save('c');
        expect(await m.reserveEntry(ident('c'), T0 + 1)).toBeUndefined();
        expect((await m.getEntry(pending.id))?.state).toBe('pending');
        expect((await m.getEntry(committed.id))?.state).toBe('committed');
      });

      it('treats every part of the identity as exact and case-sensitive', async () => {
        const base = await reserve('k');
        const others = [
          await reserve('K'),
          await reserve('k ', {}),
          await reserve('k', { version: `${VERSION}x` }),
          await reserve('k', { scope: 'refs/heads/dev' }),
          await reserve('k', { repositoryId: '1002' }),
        ];
        const ids = new Set([base.id, ...others.map((e) => e.id)]);
        const blobIds = new Set([base.blobId, ...others.map((e) => e.blobId)]);
        expect(ids.size).toBe(6);
        expect(blobIds.size).toBe(6);
      });

      it('hands out unique, increasing ids that are never reused', async () => {
        const ids: number[] = [];
        for (let i = 0; i < 25; i++) ids.push((await reserve(`k${i}`)).id);
        for (let i = 1; i < ids.length; i++) expect(ids[i]!).toBeGreaterThan(ids[i - 1]!);
        const last = ids[ids.length - 1]!;
        await m.deleteEntry(last);
        const next = (await reserve('k24')).id;
        expect(next).toBeGreaterThan(last);
      });

      it('returns undefined for unknown ids, identities and blob ids', async () => {
        expect(await m.getEntry(424242)).toBeUndefined();
        expect(await m.findEntry(ident('nope'))).toBeUndefined();
        expect(await m.findEntryByBlobId('0123456789abcdef0123456789abcdef')).toBeUndefined();
      });

      it('commits an entry with its size and times', async () => {
        const e = await reserve('k');
        const c = await m.commitEntry(e.id, 1234, T0 + 9);
        expect(c).toEqual({
          ...e,
          state: 'committed',
          sizeBytes: 1234,
          committedAt: T0 + 9,
          lastAccessedAt: T0 + 9,
        });
        expect(await m.getEntry(e.id)).toEqual(c);
        await expect(m.commitEntry(424242, 1, T0)).rejects.toThrow();
      });

      it('touches: last access moves, the URL expiry only grows', async () => {
        const e = await save('k');
        await m.touchEntry(e.id, T0 + 100, T0 + 10_000);
        expect(await m.getEntry(e.id)).toMatchObject({
          lastAccessedAt: T0 + 100,
          downloadUrlExpiresAt: T0 + 10_000,
        });
        await m.touchEntry(e.id, T0 + 200, T0 + 5_000);
        expect(await m.getEntry(e.id)).toMatchObject({
          lastAccessedAt: T0 + 200,
          downloadUrlExpiresAt: T0 + 10_000,
        });
        await m.touchEntry(424242, T0, T0); // unknown: no-op
      });

      it('lists entries in id order, filtered by repository, state and creation time', async () => {
        const a = await reserve('a', {}, T0);
        const b = await save('b');
        const c = await reserve('c', { repositoryId: '1002' }, T0 + 50);
        const d = await reserve('d', {}, T0 + 100);
        const ids = (list: CacheEntry[]) => list.map((e) => e.id);
        expect(ids(await m.listEntries())).toEqual([a.id, b.id, c.id, d.id]);
        expect(ids(await m.listEntries({}))).toEqual([a.id, b.id, c.id, d.id]);
        expect(ids(await m.listEntries({ repositoryId: REPO }))).toEqual([a.id, b.id, d.id]);
        expect(ids(await m.listEntries({ state: 'pending' }))).toEqual([a.id, c.id, d.id]);
        expect(ids(await m.listEntries({ state: 'committed' }))).toEqual([b.id]);
        expect(ids(await m.listEntries({ createdBefore: T0 + 50 }))).toEqual([a.id, b.id]);
        expect(
          ids(await m.listEntries({ repositoryId: '1002', state: 'pending', createdBefore: T0 + 51 })),
        ).toEqual([c.id]);
        expect(await m.listEntries({ repositoryId: '9' })).toEqual([]);
      });
    });
    describe('lookups', () => {
      it('finds committed entries by exact key; pending ones are invisible', async () => {
        const p = await reserve('pending-key');
        expect(await m.findCommittedExact(REPO, SCOPE, VERSION, 'pending-key')).toBeUndefined();
        expect(await m.findCommittedByPrefix(REPO, SCOPE, VERSION, 'pending')).toBeUndefined();
        await m.commitEntry(p.id, 0, T0 + 1);
        expect((await m.findCommittedExact(REPO, SCOPE, VERSION, 'pending-key'))?.id).toBe(p.id);
        expect((await m.findCommittedByPrefix(REPO, SCOPE, VERSION, 'pending'))?.id).toBe(p.id);
        expect(await m.findCommittedExact(REPO, SCOPE, VERSION, 'pending')).toBeUndefined();
      });

      it('the newest by creation wins among prefix matches, not the lexically largest', async () => {
        await save('index-buildkit-1-f921bd05#9');
        await save('index-buildkit-1-f921bd05#10');
        expect(keyOf(await m.findCommittedByPrefix(REPO, SCOPE, VERSION, 'index-buildkit-1-f921bd05#'))).toBe(
          'index-buildkit-1-f921bd05#10',
        );
        await save('z#10');
        await save('z#9');
        expect(keyOf(await m.findCommittedByPrefix(REPO, SCOPE, VERSION, 'z#'))).toBe('z#9');
      });

      it('orders by creation (reservation), not by commit time', async () => {
        const older = await reserve('p-older');
        const newer = await reserve('p-newer');
        await m.commitEntry(newer.id, 1, T0 + 1);
        await m.commitEntry(older.id, 1, T0 + 3);
        expect(keyOf(await m.findCommittedByPrefix(REPO, SCOPE, VERSION, 'p-'))).toBe('p-newer');
      });

      it('a newer pending entry does not shadow an older committed one', async () => {
        await save('npm-a');
        await reserve('npm-b');
        expect(keyOf(await m.findCommittedByPrefix(REPO, SCOPE, VERSION, 'npm-'))).toBe('npm-a');
      });

      it('passes the C-43 vector (go-actions-cache TestPartialKeyOrder)', async () => {
        const P = 'test-partial-key-order-';
        await save(`${P}foo22`);
        await save(`${P}fo`);
        await save(`${P}foo1`);
        const lookup = async (k: string) =>
          keyOf(
            (await m.findCommittedExact(REPO, SCOPE, VERSION, k)) ??
              (await m.findCommittedByPrefix(REPO, SCOPE, VERSION, k)),
          );
        expect(await lookup(`${P}foo`)).toBe(`${P}foo1`);
        expect(await lookup(P)).toBe(`${P}foo1`);
        expect(await lookup(`${P}foo3`)).toBeUndefined();
        expect(await lookup(`${P}foo2`)).toBe(`${P}foo22`);
      });

      it('keeps versions, scopes and repositories apart', async () => {
        const mine = await save('key-1');
        await save('key-2', { version: 'other' });
        await save('key-3', { scope: 'refs/heads/dev' });
        await save('key-4', { repositoryId: '1002' });
        await save('key-1', { version: 'other' });
        expect((await m.findCommittedExact(REPO, SCOPE, VERSION, 'key-1'))?.id).toBe(mine.id);
        expect((await m.findCommittedByPrefix(REPO, SCOPE, VERSION, 'key-'))?.id).toBe(mine.id);
        expect(await m.findCommittedExact(REPO, SCOPE, VERSION, 'key-2')).toBeUndefined();
        expect((await m.findCommittedExact(REPO, 'refs/heads/dev', VERSION, 'key-3'))?.key).toBe('key-3');
        expect((await m.findCommittedByPrefix(REPO, 'refs/heads/dev', VERSION, 'key-'))?.key).toBe('key-3');
        expect((await m.findCommittedByPrefix('1002', SCOPE, VERSION, 'key-'))?.key).toBe('key-4');
        expect(await m.findCommittedByPrefix('1002', SCOPE, 'other', 'key-')).toBeUndefined();
        expect((await m.findCommittedByPrefix(REPO, SCOPE, 'other', 'key-'))?.key).toBe('key-1');
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
        const find = async (p: string) => keyOf(await m.findCommittedByPrefix(REPO, SCOPE, VERSION, p));
        expect(await find('a_')).toBe('a_b');
        expect(await find('a%')).toBe('a%c');
        expect(await find('a')).toBe('aXb');
        expect(await find('é')).toBe('é1');
        expect(await find('x\u{d7ff}')).toBe('x\u{d7ff}1');
        expect(await find('x')).toBe('x\u{e000}');
        expect(await find('😀')).toBe('😀1');
        expect(await find('y\u{10ffff}')).toBe('y\u{10ffff}');
        expect(await find('y')).toBe('y\u{10ffff}');
        expect(await find('\u{10ffff}')).toBeUndefined();
        expect(await find('')).toBe('z');
        expect(await find('b')).toBeUndefined();
      });

      it('finds the newest match among many entries, whichever way the data is skewed', async () => {
        // Many old matches, then many newer non-matches: the answer is deep in both directions.
        for (let i = 0; i < 300; i++) await m.commitEntry((await reserve(`old-${i}`)).id, 0, T0);
        for (let i = 0; i < 300; i++) await m.commitEntry((await reserve(`new-${i}`)).id, 0, T0);
        expect(keyOf(await m.findCommittedByPrefix(REPO, SCOPE, VERSION, 'old-'))).toBe('old-299');
        expect(keyOf(await m.findCommittedByPrefix(REPO, SCOPE, VERSION, 'old-1'))).toBe('old-199');
        expect(keyOf(await m.findCommittedByPrefix(REPO, SCOPE, VERSION, 'new-2'))).toBe('new-299');
        expect(keyOf(await m.findCommittedByPrefix(REPO, SCOPE, VERSION, 'o'))).toBe('old-299');
        expect(keyOf(await m.findCommittedByPrefix(REPO, SCOPE, VERSION, ''))).toBe('new-299');
        expect(await m.findCommittedByPrefix(REPO, SCOPE, VERSION, 'old-3000')).toBeUndefined();
      });

      it('answers concurrent lookups each with its own match (exact, else prefix, as the service asks)', async () => {
        for (let i = 0; i < 40; i++) await save(`many-${i}-key`);
        await save('many-7-key', { scope: 'refs/heads/other' });
        await save('many-8-key', { version: 'other-version' });
        /** The service's order for one key: exact, then (on a miss) prefix. */
        const lookup = async (key: string, over: Partial<EntryIdentity> = {}) => {
          const scope = over.scope ?? SCOPE;
          const version = over.version ?? VERSION;
          const exact = await m.findCommittedExact(REPO, scope, version, key);
          if (exact) return `exact:${exact.key}:${exact.scope}:${exact.version}`;
          const prefix = await m.findCommittedByPrefix(REPO, scope, version, key);
          return prefix ? `prefix:${prefix.key}:${prefix.scope}:${prefix.version}` : 'miss';
        };
        const asked = Array.from({ length: 40 }, (_, i) =>
          i % 2 === 0 ? lookup(`many-${i}-key`) : lookup(`many-${i}-`),
        );
        const others = [
          lookup('many-7-', { scope: 'refs/heads/other' }),
          lookup('many-8-key', { version: 'other-version' }),
          lookup('many-99'),
        ];
        // A value some backend cannot store fails (or misses) on its own, never the others.
        const odd = lookup('bad\u0000key');
        const [answers, rest, oddResult] = await Promise.all([
          Promise.all(asked),
          Promise.all(others),
          odd.then(
            (r) => r,
            () => 'rejected',
          ),
        ]);
        answers.forEach((a, i) => {
          expect(a).toBe(`${i % 2 === 0 ? 'exact' : 'prefix'}:many-${i}-key:${SCOPE}:${VERSION}`);
        });
        expect(rest).toEqual([
          `prefix:many-7-key:refs/heads/other:${VERSION}`,
          `exact:many-8-key:${SCOPE}:other-version`,
          'miss',
        ]);
        expect(['miss', 'rejected']).toContain(oddResult);
      });
    });
    describe('usage and eviction order', () => {
      /** Reserve + commit (no blob) with a size, then a last access at `accessedAt`. */
      const entry = async (
        key: string,
        sizeBytes: number,
        accessedAt: number,
        over: Partial<EntryIdentity> = {},
      ) => {
        const e = await m.commitEntry((await reserve(key, over)).id, sizeBytes, T0);
        await m.touchEntry(e.id, accessedAt, 0);
        return (await m.getEntry(e.id))!;
      };
      const keys = (list: CacheEntry[]) => list.map((e) => e.key);

      it('adds up committed entries per repository; pending ones count for nothing', async () => {
        expect(await m.repositoryUsage(REPO)).toEqual({ repositoryId: REPO, sizeBytes: 0, count: 0 });
        await reserve('pending');
        await save('a', {}, '12345');
        await save('b', { scope: 'refs/heads/dev' }, '123');
        await save('c', { repositoryId: '1002' }, '1234567');
        expect(await m.repositoryUsage(REPO)).toEqual({ repositoryId: REPO, sizeBytes: 8, count: 2 });
        expect(await m.repositoryUsage('1002')).toEqual({ repositoryId: '1002', sizeBytes: 7, count: 1 });
        expect(await m.listRepositoryUsage()).toEqual([
          { repositoryId: REPO, sizeBytes: 8, count: 2 },
          { repositoryId: '1002', sizeBytes: 7, count: 1 },
        ]);
      });

      it('follows commits and deletes of any kind', async () => {
        const a = await save('a', {}, '12345');
        const p = await reserve('p');
        await m.commitEntry(p.id, 100, T0 + 5);
        expect(await m.repositoryUsage(REPO)).toMatchObject({ sizeBytes: 105, count: 2 });
        await m.deleteEntry(a.id);
        expect(await m.repositoryUsage(REPO)).toMatchObject({ sizeBytes: 100, count: 1 });
        await m.deleteEntry((await reserve('pending')).id);
        expect(await m.repositoryUsage(REPO)).toMatchObject({ sizeBytes: 100, count: 1 });
        await m.deleteEntry(p.id);
        expect(await m.repositoryUsage(REPO)).toMatchObject({ sizeBytes: 0, count: 0 });
        expect(await m.listRepositoryUsage()).toEqual([]);
      });

      it('lists a repository least recently accessed first, ties by lower id, committed only', async () => {
        await entry('new', 1, T0 + 300);
        await entry('old', 1, T0 + 100);
        await entry('tie-1', 1, T0 + 200);
        await entry('tie-2', 1, T0 + 200);
        await entry('elsewhere', 1, T0, { repositoryId: '1002' });
        await reserve('pending', {}, T0 - 1000);
        expect(keys(await m.listLeastRecentlyUsed(REPO, 10))).toEqual(['old', 'tie-1', 'tie-2', 'new']);
        expect(keys(await m.listLeastRecentlyUsed(REPO, 2))).toEqual(['old', 'tie-1']);
        expect(await m.listLeastRecentlyUsed(REPO, 0)).toEqual([]);
        expect(keys(await m.listLeastRecentlyUsed('1002', 10))).toEqual(['elsewhere']);
        expect(await m.listLeastRecentlyUsed('9', 10)).toEqual([]);
        expect((await m.listLeastRecentlyUsed(REPO, 1))[0]).toEqual(await m.findEntry(ident('old')));
      });

      it('lists idle entries of every repository accessed strictly before a time, oldest first', async () => {
        await entry('recent', 1, T0 + 500);
        await entry('edge', 1, T0 + 400);
        await entry('b', 1, T0 + 100, { repositoryId: '1002' });
        await entry('a', 1, T0 + 100);
        await entry('oldest', 1, T0 + 50, { scope: 'refs/heads/dev' });
        await reserve('pending', {}, T0);
        expect(keys(await m.listIdleEntries(T0 + 400, 10))).toEqual(['oldest', 'b', 'a']);
        expect(keys(await m.listIdleEntries(T0 + 401, 10))).toEqual(['oldest', 'b', 'a', 'edge']);
        expect(keys(await m.listIdleEntries(T0 + 401, 2))).toEqual(['oldest', 'b']);
        expect(await m.listIdleEntries(T0 + 50, 10)).toEqual([]);
      });

      it('a hit moves an entry to the end of the eviction order', async () => {
        const first = await entry('first', 1, T0 + 1);
        await entry('second', 1, T0 + 2);
        await m.touchEntry(first.id, T0 + 3, 0);
        expect(keys(await m.listLeastRecentlyUsed(REPO, 10))).toEqual(['second', 'first']);
        expect(keys(await m.listIdleEntries(T0 + 3, 10))).toEqual(['second']);
      });

      if (persistent) {
        it('keeps usage across a reopen', async () => {
          await save('a', {}, '12345');
          await save('b', { repositoryId: '1002' }, '12');
          if (!fixture.reopen) throw new Error('a persistent backend must provide reopen() in its fixture');
          m = await fixture.reopen();
          expect(await m.listRepositoryUsage()).toEqual([
            { repositoryId: REPO, sizeBytes: 5, count: 1 },
            { repositoryId: '1002', sizeBytes: 2, count: 1 },
          ]);
          expect(keys(await m.listLeastRecentlyUsed(REPO, 5))).toEqual(['a']);
        });

        it('keeps a hit recorded right before close across a reopen', async () => {
          const e = await save('a');
          await m.touchEntry(e.id, T0 + 77, T0 + 9_000);
          if (!fixture.reopen) throw new Error('a persistent backend must provide reopen() in its fixture');
          m = await fixture.reopen();
          expect(await m.getEntry(e.id)).toMatchObject({
            lastAccessedAt: T0 + 77,
            downloadUrlExpiresAt: T0 + 9_000,
          });
        });
      }
    });

    describe('sweeper support', () => {
      it('tells the state of the entries behind blob ids', async () => {
        const p = await reserve('p');
        const c = await save('c');
        const owners = await m.blobOwners([p.blobId, c.blobId, '0123456789abcdef0123456789abcdef']);
        expect([...owners].sort()).toEqual(
          [
            [p.blobId, 'pending'],
            [c.blobId, 'committed'],
          ].sort(),
        );
        expect((await m.blobOwners([])).size).toBe(0);
      });

      it('returns the deleted entry with its last hit, once', async () => {
        const e = await save('k');
        await m.touchEntry(e.id, T0 + 50, T0 + 5_000);
        expect(await m.deleteEntry(e.id)).toMatchObject({
          id: e.id,
          blobId: e.blobId,
          lastAccessedAt: T0 + 50,
          downloadUrlExpiresAt: T0 + 5_000,
        });
        expect(await m.deleteEntry(e.id)).toBeUndefined();
      });

      it('takes rate slots in a sliding window, per key', async () => {
        for (let i = 0; i < 3; i++)
          expect(await m.takeRateSlot('create:1', 3, 60_000, T0 + i)).toBeUndefined();
        expect(await m.takeRateSlot('create:1', 3, 60_000, T0 + 10)).toBe(60_000 - 10);
        expect(await m.takeRateSlot('create:2', 3, 60_000, T0 + 10)).toBeUndefined();
        expect(await m.takeRateSlot('create:1', 3, 60_000, T0 + 60_000)).toBeUndefined();
      });

      it('runs an exclusive sweep', async () => {
        let ran = false;
        expect(
          await m.exclusiveSweep(async () => {
            ran = true;
          }),
        ).toBe(true);
        expect(ran).toBe(true);
      });
    });
  });
}
