import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { CacheEntry, CacheStorage, EntryIdentity } from '../src/storage/types.js';
import {
  body,
  type ContractOptions,
  type Fixture,
  ident,
  jsId,
  latest,
  REPO,
  read,
  rsId,
  SCOPE,
  T0,
  VERSION,
} from './fixtures.js';

/**
 * What a metadata store and a blob store do together (`composeStorage`): deletes that keep issued
 * download URLs working, sweeps, and persistence of both. Run for every pair a deployment uses.
 */
export function describeStorageContract(
  name: string,
  create: () => Promise<Fixture<CacheStorage>>,
  { persistent = false }: ContractOptions = {},
): void {
  describe(`CacheStorage contract: ${name}`, () => {
    let fixture: Fixture<CacheStorage>;
    let s: CacheStorage;

    beforeEach(async () => {
      fixture = await create();
      s = fixture.store;
    });
    afterEach(async () => {
      await fixture.cleanup();
    });

    const reserve = async (key: string, over: Partial<EntryIdentity> = {}, now = T0): Promise<CacheEntry> => {
      const e = await s.metadata.reserveEntry(ident(key, over), now);
      if (!e) throw new Error(`identity ${key} already exists`);
      return e;
    };
    /** Reserve + Put Blob + Finalize. */
    const save = async (key: string, over: Partial<EntryIdentity> = {}, content = `content of ${key}`) => {
      const e = await reserve(key, over);
      await s.blobs.putBlob(e.blobId, body(content), Buffer.byteLength(content), T0 + 1);
      return s.metadata.commitEntry(e.id, Buffer.byteLength(content), T0 + 2);
    };
    const content = async (blobId: string) => read((await s.blobs.openBlob(blobId)).stream);
    const expectCode = async (p: Promise<unknown>, code: string) => {
      await expect(p).rejects.toMatchObject({ name: 'StorageError', code });
    };
    const keyOf = (e: CacheEntry | undefined) => e?.key;

    it('names its kind', () => {
      expect(typeof s.kind).toBe('string');
      expect(s.kind.length).toBeGreaterThan(0);
    });

    describe('delete and sweep', () => {
      it('deletes an entry and frees its identity; a blob without issued URLs goes at once', async () => {
        const e = await save('k');
        await s.deleteEntry(e.id, T0 + 10);
        expect(await s.metadata.getEntry(e.id)).toBeUndefined();
        expect(await s.metadata.findEntry(ident('k'))).toBeUndefined();
        expect(await s.metadata.findEntryByBlobId(e.blobId)).toBeUndefined();
        expect(await s.metadata.findCommittedExact(REPO, SCOPE, VERSION, 'k')).toBeUndefined();
        expect(await s.blobs.getBlobProperties(e.blobId)).toBeUndefined();
        await expectCode(s.blobs.openBlob(e.blobId), 'BlobNotFound');
        const again = await reserve('k');
        expect(again.id).toBeGreaterThan(e.id);
        expect(again.blobId).not.toBe(e.blobId);
        await s.deleteEntry(424242, T0); // unknown: no-op
        expect(await s.sweepBlobs(T0 + 10)).toBe(0);
      });

      it('keeps a deleted entry’s blob readable until its last download URL expires', async () => {
        const e = await save('k', {}, 'still here');
        await s.metadata.touchEntry(e.id, T0 + 10, T0 + 1_000);
        await s.deleteEntry(e.id, T0 + 20);
        expect(await s.metadata.getEntry(e.id)).toBeUndefined();
        expect((await s.blobs.getBlobProperties(e.blobId))?.size).toBe(10);
        expect((await content(e.blobId)).toString()).toBe('still here');
        expect(await s.sweepBlobs(T0 + 999)).toBe(0);
        expect((await content(e.blobId)).toString()).toBe('still here');
        expect(await s.sweepBlobs(T0 + 1_000)).toBe(1);
        expect(await s.blobs.getBlobProperties(e.blobId)).toBeUndefined();
        await expectCode(s.blobs.openBlob(e.blobId), 'BlobNotFound');
        expect(await s.sweepBlobs(T0 + 2_000)).toBe(0);
      });

      it('deletes a blob whose URLs already expired at once', async () => {
        const e = await save('k');
        await s.metadata.touchEntry(e.id, T0 + 10, T0 + 100);
        await s.deleteEntry(e.id, T0 + 100);
        expect(await s.blobs.getBlobProperties(e.blobId)).toBeUndefined();
      });

      it('drops the staged blocks of a deleted pending entry', async () => {
        const e = await reserve('k');
        await s.blobs.putBlock(e.blobId, rsId(0), body('abc'), 3);
        await s.deleteEntry(e.id, T0);
        await expectCode(
          s.blobs.commitBlockList(e.blobId, [{ kind: 'uncommitted', id: rsId(0) }], T0),
          'InvalidBlockList',
        );
        expect(await s.blobs.getBlobProperties(e.blobId)).toBeUndefined();
      });

      it('sweeps a blob written after its entry was deleted', async () => {
        const e = await reserve('k');
        await s.deleteEntry(e.id, T0);
        await s.blobs.putBlob(e.blobId, body('late'), 4, T0 + 1);
        expect(await s.sweepBlobs(T0 + 2)).toBe(1);
        expect(await s.blobs.getBlobProperties(e.blobId)).toBeUndefined();
      });

      it('never sweeps the blob of a live entry', async () => {
        const pending = await reserve('p');
        await s.blobs.putBlob(pending.blobId, body('p'), 1, T0);
        const committed = await save('c');
        expect(await s.sweepBlobs(T0 + 365 * 86_400_000)).toBe(0);
        expect((await content(pending.blobId)).toString()).toBe('p');
        expect((await content(committed.blobId)).toString()).toBe('content of c');
      });
    });
    // Only persistent backends promise this; the memory backend keeps nothing by design.
    if (persistent)
      it('persists entries and blobs across a reopen', async () => {
        if (!fixture.reopen) throw new Error('a persistent backend must provide reopen() in its fixture');
        const a = await save('persist-a', {}, 'alpha');
        const b = await reserve('persist-b');
        const parts = [randomBytes(40_000), randomBytes(10)];
        for (const [i, p] of parts.entries())
          await s.blobs.putBlock(b.blobId, jsId(i), body(p, 4096), p.length);
        const bProps = await s.blobs.commitBlockList(b.blobId, latest(jsId(0), jsId(1)), T0 + 3);
        await s.metadata.commitEntry(b.id, 40_010, T0 + 4);
        await s.metadata.touchEntry(a.id, T0 + 5, T0 + 600_000);
        const pending = await reserve('persist-pending');
        await s.blobs.putBlock(pending.blobId, rsId(7), body('staged'), 6);
        const retained = await save('persist-retained', {}, 'retained');
        await s.metadata.touchEntry(retained.id, T0 + 6, T0 + 1_000);
        await s.deleteEntry(retained.id, T0 + 7);
        const newest = await reserve('persist-newest');
        await s.deleteEntry(newest.id, T0 + 8);
        const before = await s.metadata.listEntries();
        const aProps = await s.blobs.getBlobProperties(a.blobId);

        s = await fixture.reopen();

        expect(await s.metadata.listEntries()).toEqual(before);
        expect(await s.blobs.getBlobProperties(a.blobId)).toEqual(aProps);
        expect(await s.blobs.getBlobProperties(b.blobId)).toEqual(bProps);
        expect((await content(a.blobId)).toString()).toBe('alpha');
        expect((await content(b.blobId)).equals(Buffer.concat(parts))).toBe(true);
        expect(await s.metadata.getEntry(a.id)).toMatchObject({
          lastAccessedAt: T0 + 5,
          downloadUrlExpiresAt: T0 + 600_000,
        });
        expect(keyOf(await s.metadata.findCommittedByPrefix(REPO, SCOPE, VERSION, 'persist-'))).toBe(
          'persist-b',
        );
        expect((await s.metadata.findCommittedExact(REPO, SCOPE, VERSION, 'persist-a'))?.id).toBe(a.id);
        expect(await s.metadata.reserveEntry(ident('persist-pending'), T0)).toBeUndefined();
        // Staged blocks of a pending entry survive, and the committed ones can be re-committed.
        await s.blobs.commitBlockList(pending.blobId, latest(rsId(7)), T0 + 9);
        expect((await content(pending.blobId)).toString()).toBe('staged');
        await s.blobs.commitBlockList(b.blobId, latest(jsId(1), jsId(0)), T0 + 10);
        expect((await content(b.blobId)).equals(Buffer.concat([parts[1]!, parts[0]!]))).toBe(true);
        // A retained blob is still retained, and still swept on time.
        expect((await content(retained.blobId)).toString()).toBe('retained');
        expect(await s.sweepBlobs(T0 + 1_000)).toBe(1);
        expect(await s.blobs.getBlobProperties(retained.blobId)).toBeUndefined();
        // Ids keep increasing, past the deleted newest one too.
        expect((await reserve('persist-after')).id).toBeGreaterThan(newest.id);
      });
  });
}
