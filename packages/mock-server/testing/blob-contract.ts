import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { BlobStore, EntryState } from '../src/storage/types.js';
import { body, type ContractOptions, type Fixture, goId, jsId, latest, read, rsId, T0 } from './fixtures.js';

/**
 * The one contract every `BlobStore` backend passes. Call it from a backend's test file:
 * `describeBlobContract('memory', async () => ({ store: createMemoryBlobStore(), cleanup: … }))`.
 */
export function describeBlobContract(
  name: string,
  create: () => Promise<Fixture<BlobStore>>,
  { persistent = false, serverTime = false }: ContractOptions = {},
): void {
  describe(`BlobStore contract: ${name}`, () => {
    let fixture: Fixture<BlobStore>;
    let b: BlobStore;

    beforeEach(async () => {
      fixture = await create();
      b = fixture.store;
    });
    afterEach(async () => {
      await fixture.cleanup();
    });

    /** A time the store stamps: the `now` passed in, or any time for a real blob service. */
    const at = (now: number) => (serverTime ? expect.any(Number) : now);
    /** A fresh blob id, as a metadata store hands them out (the key is not part of it). */
    const reserve = (_key: string) => ({ blobId: randomBytes(16).toString('hex') });
    const content = async (blobId: string) => read((await b.openBlob(blobId)).stream);
    const expectCode = async (p: Promise<unknown>, code: string) => {
      await expect(p).rejects.toMatchObject({ name: 'StorageError', code });
    };
    const owners =
      (map: Record<string, EntryState>) =>
      async (ids: readonly string[]): Promise<ReadonlyMap<string, EntryState>> =>
        new Map(ids.filter((id) => map[id] !== undefined).map((id) => [id, map[id]!]));

    it('names its kind', () => {
      expect(typeof b.kind).toBe('string');
      expect(b.kind.length).toBeGreaterThan(0);
    });

    describe('Put Blob', () => {
      it('has no content before the first commit', async () => {
        const e = reserve('k');
        expect(await b.getBlobProperties(e.blobId)).toBeUndefined();
        await expectCode(b.openBlob(e.blobId), 'BlobNotFound');
      });

      it('commits content and properties', async () => {
        const e = reserve('k');
        const data = randomBytes(100_000);
        const props = await b.putBlob(e.blobId, body(data, 8191), data.length, T0 + 3);
        expect(props).toEqual({
          size: 100_000,
          etag: expect.stringMatching(/^"0x[0-9A-F]+"$/),
          lastModified: at(T0 + 3),
          createdAt: at(T0 + 3),
        });
        expect(await b.getBlobProperties(e.blobId)).toEqual(props);
        const opened = await b.openBlob(e.blobId);
        expect(opened.properties).toEqual(props);
        expect((await read(opened.stream)).equals(data)).toBe(true);
      });

      it('commits an empty blob', async () => {
        const e = reserve('k');
        const props = await b.putBlob(e.blobId, body(''), 0, T0);
        expect(props.size).toBe(0);
        expect((await content(e.blobId)).length).toBe(0);
      });

      it('replaces content with a new ETag and keeps the creation time', async () => {
        const e = reserve('k');
        const first = await b.putBlob(e.blobId, body('first'), 5, T0);
        const second = await b.putBlob(e.blobId, body('second!'), 7, T0 + 50);
        expect(second).toMatchObject({ size: 7, lastModified: at(T0 + 50), createdAt: at(T0) });
        expect(second.createdAt).toBe(first.createdAt);
        expect(second.etag).not.toBe(first.etag);
        expect((await content(e.blobId)).toString()).toBe('second!');
      });

      it('drops staged blocks (C-62)', async () => {
        const e = reserve('k');
        await b.putBlock(e.blobId, rsId(0), body('staged'), 6);
        await b.putBlob(e.blobId, body('blob'), 4, T0);
        await expectCode(b.commitBlockList(e.blobId, latest(rsId(0)), T0 + 1), 'InvalidBlockList');
        expect((await content(e.blobId)).toString()).toBe('blob');
      });

      it.each([
        ['shorter', 'abc', 4],
        ['longer', 'abcde', 4],
      ])('fails a %s body with IncompleteBody and commits nothing', async (_, data, length) => {
        const e = reserve('k');
        await expectCode(b.putBlob(e.blobId, body(data, 1), length, T0), 'IncompleteBody');
        expect(await b.getBlobProperties(e.blobId)).toBeUndefined();
        const before = await b.putBlob(e.blobId, body('good'), 4, T0 + 1);
        await expectCode(b.putBlob(e.blobId, body(data, 1), length, T0 + 2), 'IncompleteBody');
        expect(await b.getBlobProperties(e.blobId)).toEqual(before);
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
        await expect(b.putBlob(e.blobId, failing, 10, T0)).rejects.toThrow();
        expect(await b.getBlobProperties(e.blobId)).toBeUndefined();
      });
    });
    describe('Put Block and Put Block List', () => {
      it('staging leaves the blob absent, and a commit concatenates in list order (C-63, C-66)', async () => {
        const e = reserve('k');
        const parts = [randomBytes(3000), randomBytes(1), randomBytes(70_000)];
        for (const i of [2, 0, 1])
          await b.putBlock(e.blobId, jsId(i), body(parts[i]!, 4096), parts[i]!.length);
        expect(await b.getBlobProperties(e.blobId)).toBeUndefined();
        await expectCode(b.openBlob(e.blobId), 'BlobNotFound');
        const props = await b.commitBlockList(e.blobId, latest(jsId(0), jsId(1), jsId(2)), T0 + 7);
        expect(props).toEqual({
          size: 73_001,
          etag: expect.stringMatching(/^"0x[0-9A-F]+"$/),
          lastModified: at(T0 + 7),
          createdAt: at(T0 + 7),
        });
        expect((await content(e.blobId)).equals(Buffer.concat(parts))).toBe(true);
      });

      it('staging never changes the committed content or ETag', async () => {
        const e = reserve('k');
        const props = await b.putBlob(e.blobId, body('committed'), 9, T0);
        await b.putBlock(e.blobId, goId(0), body('staged'), 6);
        expect(await b.getBlobProperties(e.blobId)).toEqual(props);
        expect((await content(e.blobId)).toString()).toBe('committed');
      });

      it('re-staging an id replaces its data (C-65)', async () => {
        const e = reserve('k');
        await b.putBlock(e.blobId, goId(0), body('old data'), 8);
        await b.putBlock(e.blobId, goId(0), body('new'), 3);
        await b.commitBlockList(e.blobId, latest(goId(0)), T0);
        expect((await content(e.blobId)).toString()).toBe('new');
      });

      it('a failed re-stage keeps the earlier data', async () => {
        const e = reserve('k');
        await b.putBlock(e.blobId, goId(0), body('kept'), 4);
        await expectCode(b.putBlock(e.blobId, goId(0), body('xy'), 3), 'IncompleteBody');
        await expectCode(b.putBlock(e.blobId, goId(1), body('xyzw'), 3), 'IncompleteBody');
        await expectCode(b.commitBlockList(e.blobId, latest(goId(1)), T0), 'InvalidBlockList');
        await b.commitBlockList(e.blobId, latest(goId(0)), T0);
        expect((await content(e.blobId)).toString()).toBe('kept');
      });

      it('resolves Committed, Uncommitted and Latest like Azure (C-69)', async () => {
        const e = reserve('k');
        const [A, B, C] = [rsId(1), rsId(2), rsId(3)];
        await b.putBlock(e.blobId, A, body('a0'), 2);
        await b.putBlock(e.blobId, B, body('b0'), 2);
        await b.commitBlockList(e.blobId, latest(A, B), T0);
        await b.putBlock(e.blobId, A, body('A1'), 2);
        await b.putBlock(e.blobId, C, body('C1'), 2);
        // Uncommitted B: B is only committed. Committed C: C is only staged.
        await expectCode(
          b.commitBlockList(e.blobId, [{ kind: 'uncommitted', id: B }], T0),
          'InvalidBlockList',
        );
        await expectCode(b.commitBlockList(e.blobId, [{ kind: 'committed', id: C }], T0), 'InvalidBlockList');
        await b.commitBlockList(
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
        await b.commitBlockList(e.blobId, [{ kind: 'committed', id: C }, ...latest(B)], T0 + 2);
        expect((await content(e.blobId)).toString()).toBe('C1b0');
      });

      it('an unknown id fails the whole list and changes nothing (C-67)', async () => {
        const e = reserve('k');
        await b.putBlock(e.blobId, jsId(0), body('zero'), 4);
        const before = await b.commitBlockList(e.blobId, latest(jsId(0)), T0);
        await b.putBlock(e.blobId, jsId(1), body('one'), 3);
        await b.putBlock(e.blobId, jsId(2), body('two'), 3);
        await expectCode(
          b.commitBlockList(e.blobId, latest(jsId(1), jsId(9), jsId(2)), T0 + 1),
          'InvalidBlockList',
        );
        expect(await b.getBlobProperties(e.blobId)).toEqual(before);
        expect((await content(e.blobId)).toString()).toBe('zero');
        // The staged blocks are all still there.
        await b.commitBlockList(
          e.blobId,
          [...latest(jsId(2), jsId(0)), { kind: 'uncommitted', id: jsId(1) }],
          T0 + 2,
        );
        expect((await content(e.blobId)).toString()).toBe('twozeroone');
      });

      it('drops the blocks left out of a commit', async () => {
        const e = reserve('k');
        for (const i of [0, 1, 2]) await b.putBlock(e.blobId, jsId(i), body(`b${i}`), 2);
        await b.commitBlockList(e.blobId, latest(jsId(0), jsId(2)), T0);
        await expectCode(b.commitBlockList(e.blobId, latest(jsId(1)), T0 + 1), 'InvalidBlockList');
        expect((await content(e.blobId)).toString()).toBe('b0b2');
      });

      it('repeating a successful commit gives identical content (C-68)', async () => {
        const e = reserve('k');
        const parts = [randomBytes(5000), randomBytes(5000), randomBytes(17)];
        for (const i of [1, 2, 0])
          await b.putBlock(e.blobId, goId(i), body(parts[i]!, 999), parts[i]!.length);
        const ids = [goId(0), goId(1), goId(2)];
        const first = await b.commitBlockList(e.blobId, latest(...ids), T0);
        const second = await b.commitBlockList(e.blobId, latest(...ids), T0 + 5);
        expect(second).toMatchObject({ size: first.size, createdAt: at(T0), lastModified: at(T0 + 5) });
        expect(second.createdAt).toBe(first.createdAt);
        expect(second.etag).not.toBe(first.etag);
        expect((await content(e.blobId)).equals(Buffer.concat(parts))).toBe(true);
      });

      it('an empty list commits an empty blob (C-70)', async () => {
        const e = reserve('k');
        await b.putBlock(e.blobId, rsId(0), body('dropped'), 7);
        const props = await b.commitBlockList(e.blobId, [], T0);
        expect(props.size).toBe(0);
        expect((await content(e.blobId)).length).toBe(0);
        await expectCode(b.commitBlockList(e.blobId, latest(rsId(0)), T0), 'InvalidBlockList');
      });

      it('round-trips JS, GO and RS ids, including + / = characters (C-72)', async () => {
        for (const make of [jsId, goId, rsId]) {
          const e = reserve(`k-${make.name}`);
          const ids = [0, 1, 0xfbff].map(make);
          for (const [i, id] of ids.entries()) await b.putBlock(e.blobId, id, body(`<${i}>`), 3);
          await b.commitBlockList(e.blobId, latest(...ids.reverse()), T0);
          expect((await content(e.blobId)).toString()).toBe('<2><1><0>');
        }
        expect(goId(0xfbff)).toMatch(/[+/]/);
        expect(rsId(0)).toMatch(/=$/);
      });

      it('refuses an id whose length differs from the staged ones, and drains its body (C-64)', async () => {
        const e = reserve('k');
        await b.putBlock(e.blobId, rsId(0), body('ok'), 2);
        const rejected = body(randomBytes(50_000), 1000);
        await expectCode(b.putBlock(e.blobId, jsId(0), rejected, 50_000), 'InvalidBlobOrBlock');
        await finished(rejected);
        await b.putBlock(e.blobId, rsId(1), body('!!'), 2);
        await b.commitBlockList(e.blobId, latest(rsId(0), rsId(1)), T0);
        expect((await content(e.blobId)).toString()).toBe('ok!!');
        // After the commit nothing is staged, so any length is fine again.
        await b.putBlock(e.blobId, goId(0), body('go'), 2);
        await b.commitBlockList(e.blobId, latest(goId(0)), T0 + 1);
        expect((await content(e.blobId)).toString()).toBe('go');
      });

      it('fails short and long block bodies with IncompleteBody and stages nothing', async () => {
        const e = reserve('k');
        await expectCode(b.putBlock(e.blobId, rsId(0), body('ab'), 3), 'IncompleteBody');
        await expectCode(b.putBlock(e.blobId, rsId(1), body('abcd'), 3), 'IncompleteBody');
        await expectCode(b.commitBlockList(e.blobId, latest(rsId(0)), T0), 'InvalidBlockList');
        await expectCode(b.commitBlockList(e.blobId, latest(rsId(1)), T0), 'InvalidBlockList');
        expect(await b.getBlobProperties(e.blobId)).toBeUndefined();
      });

      it('handles many blocks', async () => {
        const e = reserve('k');
        const parts = Array.from({ length: 200 }, (_, i) => randomBytes(100 + i));
        for (const [i, p] of parts.entries()) await b.putBlock(e.blobId, goId(i), body(p, 64), p.length);
        const props = await b.commitBlockList(e.blobId, latest(...parts.map((_, i) => goId(i))), T0);
        const all = Buffer.concat(parts);
        expect(props.size).toBe(all.length);
        expect((await content(e.blobId)).equals(all)).toBe(true);
      });
    });
    describe('reading', () => {
      it('reads byte ranges (inclusive ends)', async () => {
        const e = reserve('k');
        const data = randomBytes(3 * 1024 * 1024 + 5);
        await b.putBlob(e.blobId, body(data, 65_536), data.length, T0);
        const range = async (start: number, end: number) => {
          const opened = await b.openBlob(e.blobId, { start, end });
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
        for (const [i, p] of parts.entries()) await b.putBlock(e.blobId, jsId(i), body(p, 512), p.length);
        await b.commitBlockList(e.blobId, latest(jsId(0), jsId(1), jsId(2)), T0);
        const all = Buffer.concat(parts);
        const opened = await b.openBlob(e.blobId, { start: 900, end: 3100 });
        expect((await read(opened.stream)).equals(all.subarray(900, 3101))).toBe(true);
      });
      it('an open stream keeps reading the content as of the call (replace, delete)', async () => {
        const e = reserve('k');
        const v1 = randomBytes(2 * 1024 * 1024);
        const p1 = await b.putBlob(e.blobId, body(v1, 65_536), v1.length, T0);
        const whole = await b.openBlob(e.blobId);
        const ranged = await b.openBlob(e.blobId, { start: 10, end: 19 });
        await b.putBlob(e.blobId, body('v2'), 2, T0 + 1);
        const third = await b.openBlob(e.blobId);
        await b.discardBlob(e.blobId, 0, T0 + 3);
        expect(await b.getBlobProperties(e.blobId)).toBeUndefined();
        expect(whole.properties).toEqual(p1);
        expect((await read(whole.stream)).equals(v1)).toBe(true);
        expect((await read(ranged.stream)).equals(v1.subarray(10, 20))).toBe(true);
        expect((await read(third.stream)).toString()).toBe('v2');
      });
    });

    describe('discard and sweep', () => {
      it('discards at once without retention, or keeps the content until the retention ends', async () => {
        const now = reserve('now');
        const later = reserve('later');
        await b.putBlob(now.blobId, body('now'), 3, T0);
        await b.putBlob(later.blobId, body('later'), 5, T0);
        await b.discardBlob(now.blobId, T0, T0);
        await b.discardBlob(later.blobId, T0 + 1_000, T0);
        expect(await b.getBlobProperties(now.blobId)).toBeUndefined();
        expect((await content(later.blobId)).toString()).toBe('later');
        expect(await b.sweep(T0 + 999, owners({}))).toBe(0);
        expect(await b.sweep(T0 + 1_000, owners({}))).toBe(1);
        expect(await b.getBlobProperties(later.blobId)).toBeUndefined();
        await b.discardBlob(reserve('never').blobId, T0, T0); // unknown: no-op
      });

      it('sweeps blobs and staged blocks no entry owns, never those of live entries', async () => {
        const [pending, committed, orphan, stagedOrphan] = ['p', 'c', 'o', 's'].map(reserve);
        await b.putBlock(pending!.blobId, rsId(0), body('p'), 1);
        await b.putBlob(committed!.blobId, body('c'), 1, T0);
        await b.putBlob(orphan!.blobId, body('o'), 1, T0);
        await b.putBlock(stagedOrphan!.blobId, rsId(0), body('s'), 1);
        const live = owners({ [pending!.blobId]: 'pending', [committed!.blobId]: 'committed' });
        expect(await b.sweep(T0 + 365 * 86_400_000, live)).toBe(1);
        expect(await b.getBlobProperties(orphan!.blobId)).toBeUndefined();
        expect((await content(committed!.blobId)).toString()).toBe('c');
        await b.commitBlockList(pending!.blobId, latest(rsId(0)), T0);
        expect((await content(pending!.blobId)).toString()).toBe('p');
        await expectCode(b.commitBlockList(stagedOrphan!.blobId, latest(rsId(0)), T0), 'InvalidBlockList');
      });
    });

    if (persistent)
      it('persists committed blobs across a reopen', async () => {
        if (!fixture.reopen) throw new Error('a persistent backend must provide reopen() in its fixture');
        const a = reserve('a');
        const aProps = await b.putBlob(a.blobId, body('alpha'), 5, T0);
        const c = reserve('c');
        for (const i of [0, 1]) await b.putBlock(c.blobId, rsId(i), body(`part ${i} `), 7);
        const cProps = await b.commitBlockList(c.blobId, latest(rsId(0), rsId(1)), T0 + 1);
        b = await fixture.reopen();
        expect(await b.getBlobProperties(a.blobId)).toEqual(aProps);
        expect(await b.getBlobProperties(c.blobId)).toEqual(cProps);
        expect((await content(a.blobId)).toString()).toBe('alpha');
        expect((await content(c.blobId)).toString()).toBe('part 0 part 1 ');
      });
  });
}
