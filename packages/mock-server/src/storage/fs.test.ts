import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath, pathToFileURL } from 'node:url';
import ts from 'typescript';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { describeBlobContract } from '../../testing/blob-contract.js';
import { describeMetadataContract } from '../../testing/metadata-contract.js';
import { describeStorageContract } from '../../testing/storage-contract.js';
import { createFsStorage, prefixUpperBound } from './fs.js';
import type { CacheStorage, EntryIdentity } from './types.js';

/** A fresh data directory with the embedded pair opened on it; `reopen` closes and opens it again. */
function fsFixture<T>(pick: (s: CacheStorage) => T) {
  return async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'gha-cache-fs-'));
    let storage: CacheStorage = createFsStorage({ dataDir });
    return {
      store: pick(storage),
      reopen: async () => {
        await storage.close();
        storage = createFsStorage({ dataDir });
        return pick(storage);
      },
      cleanup: async () => {
        await storage.close();
        await rm(dataDir, { recursive: true, force: true });
      },
    };
  };
}

describeMetadataContract(
  'sqlite',
  fsFixture((s) => s.metadata),
  { persistent: true },
);
describeBlobContract(
  'files',
  fsFixture((s) => s.blobs),
  { persistent: true },
);
describeStorageContract(
  'fs',
  fsFixture((s) => s),
  { persistent: true },
);

const T0 = Date.UTC(2026, 10, 26, 12, 0, 0);
const ident = (key: string): EntryIdentity => ({
  repositoryId: '7',
  scope: 'refs/heads/main',
  key,
  version: 'v1',
});
const body = (data: Buffer | string) => Readable.from([typeof data === 'string' ? Buffer.from(data) : data]);
const read = async (s: CacheStorage, blobId: string) => {
  const chunks: Buffer[] = [];
  for await (const c of (await s.blobs.openBlob(blobId)).stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
};
/** Every file under `dir`, relative to it. */
const filesUnder = (dir: string): string[] =>
  readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((d) => d.isFile())
    .map((d) => join(d.parentPath, d.name).slice(dir.length + 1))
    .sort();

describe('prefixUpperBound', () => {
  it('increments the last code point, skipping surrogates and dropping U+10FFFF', async () => {
    expect(prefixUpperBound('abc')).toBe('abd');
    expect(prefixUpperBound('a\u{d7ff}')).toBe('a\u{e000}');
    expect(prefixUpperBound('a😀')).toBe('a😁');
    expect(prefixUpperBound('a\u{10ffff}\u{10ffff}')).toBe('b');
    expect(prefixUpperBound('\u{10ffff}')).toBeUndefined();
    expect(prefixUpperBound('')).toBeUndefined();
  });
});

describe('fs storage on disk', () => {
  let dataDir: string;
  let s: CacheStorage;
  const open = () => {
    s = createFsStorage({ dataDir });
    return s;
  };
  const save = async (key: string, content: Buffer | string) => {
    const e = (await s.metadata.reserveEntry(ident(key), T0))!;
    await s.blobs.putBlob(e.blobId, body(content), Buffer.byteLength(content), T0 + 1);
    return s.metadata.commitEntry(e.id, Buffer.byteLength(content), T0 + 2);
  };

  beforeEach(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'gha-cache-fs-'));
    open();
  });
  afterEach(async () => {
    await s.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('lays out one generation file per blob and nothing else', async () => {
    const a = await save('a', 'alpha');
    const b = (await s.metadata.reserveEntry(ident('b'), T0))!;
    await s.blobs.putBlock(b.blobId, 'AAAA', body('x'), 1);
    expect(filesUnder(join(dataDir, 'staging'))).toEqual([join(b.blobId, 'b000000')]);
    await s.blobs.commitBlockList(b.blobId, [{ kind: 'latest', id: 'AAAA' }], T0);
    await s.blobs.putBlob(a.blobId, body('alpha 2'), 7, T0 + 5); // replaces: the old generation goes
    await s.sweepBlobs(T0); // waits for background unlinks
    const blobs = filesUnder(join(dataDir, 'blobs'));
    expect(blobs).toHaveLength(2);
    expect(blobs).toContainEqual(
      expect.stringMatching(new RegExp(`^${a.blobId.slice(0, 2)}/${a.blobId}\\.[0-9a-f]{16}$`)),
    );
    expect(filesUnder(join(dataDir, 'staging'))).toEqual([]);
    expect(filesUnder(join(dataDir, 'tmp'))).toEqual([]);

    await s.deleteEntry(a.id, T0 + 10);
    await s.deleteEntry(b.id, T0 + 10);
    await s.sweepBlobs(T0 + 10);
    expect(filesUnder(join(dataDir, 'blobs'))).toEqual([]);
  });

  it('removes leftovers of interrupted operations at start-up and keeps committed data byte-identical', async () => {
    const content = randomBytes(300_000);
    const kept = await save('kept', content);
    const pending = (await s.metadata.reserveEntry(ident('pending'), T0))!;
    await s.blobs.putBlock(pending.blobId, 'AAAA', body('staged'), 6);
    const committed = await save('committed-with-stale-blocks', 'c');
    const gone = (await s.metadata.reserveEntry(ident('gone'), T0))!;
    await s.deleteEntry(gone.id, T0);
    const props = await s.blobs.getBlobProperties(kept.blobId);
    await s.close();

    const [generation] = readdirSync(join(dataDir, 'blobs', kept.blobId.slice(0, 2))).filter((n) =>
      n.startsWith(kept.blobId),
    );
    const shard = join(dataDir, 'blobs', kept.blobId.slice(0, 2));
    // A crash while receiving a body: a half-written tmp file.
    await writeFile(join(dataDir, 'tmp', 'a1b2c3'), randomBytes(1000));
    await mkdir(join(dataDir, 'tmp', 'x-staging'), { recursive: true });
    // A crash between the rename into place and the row switch: an unreferenced newer generation.
    await writeFile(join(shard, `${kept.blobId}.00000000000000ff`), 'half of a new generation');
    // A crash between the row switch and the unlink: an unreferenced older generation.
    await writeFile(join(shard, `${kept.blobId}.0000000000000001`), 'the previous generation');
    // A crash while linking the parts of a block list: an unreferenced generation directory.
    await mkdir(join(shard, `${kept.blobId}.00000000000000fe`));
    await writeFile(join(shard, `${kept.blobId}.00000000000000fe`, 'p0'), 'a part');
    // Files of blobs that are not in the table at all, and stray names.
    await mkdir(join(dataDir, 'blobs', 'ab'), { recursive: true });
    await writeFile(join(dataDir, 'blobs', 'ab', `ab${'0'.repeat(30)}.0123456789abcdef`), 'orphan');
    await writeFile(join(dataDir, 'blobs', 'ab', 'stray'), 'x');
    await mkdir(join(dataDir, 'blobs', 'not-a-shard'));
    // Staging dirs: of a committed entry (stale), of a deleted entry, of nothing, of a pending entry (kept).
    for (const dir of [committed.blobId, gone.blobId, 'f'.repeat(32), '..evil']) {
      await mkdir(join(dataDir, 'staging', dir), { recursive: true });
      await writeFile(join(dataDir, 'staging', dir, 'b00'), 'stale');
    }
    // Files the storage does not own stay alone.
    await writeFile(join(dataDir, 'secrets.json'), '{}');

    open();
    // Before anything is served: the work files and the staging directories of no pending entry.
    expect(filesUnder(join(dataDir, 'tmp'))).toEqual([]);
    expect(readdirSync(join(dataDir, 'tmp'))).toEqual([]);
    expect(readdirSync(join(dataDir, 'staging'))).toEqual([pending.blobId]);
    // In the background after start-up: unreferenced generations and stray names under blobs/.
    await expect
      .poll(() => readdirSync(shard).filter((n) => n.startsWith(kept.blobId)), { timeout: 20_000 })
      .toEqual([generation]);
    await expect
      .poll(() => existsSync(join(dataDir, 'blobs', 'ab', 'stray')), { timeout: 20_000 })
      .toBe(false);
    await expect
      .poll(() => existsSync(join(dataDir, 'blobs', 'ab', `ab${'0'.repeat(30)}.0123456789abcdef`)), {
        timeout: 20_000,
      })
      .toBe(false);
    await expect
      .poll(() => existsSync(join(dataDir, 'blobs', 'not-a-shard')), { timeout: 20_000 })
      .toBe(false);
    expect(existsSync(join(dataDir, 'secrets.json'))).toBe(true);

    expect(await s.blobs.getBlobProperties(kept.blobId)).toEqual(props);
    expect((await read(s, kept.blobId)).equals(content)).toBe(true);
    await s.blobs.commitBlockList(pending.blobId, [{ kind: 'uncommitted', id: 'AAAA' }], T0 + 3);
    expect((await read(s, pending.blobId)).toString()).toBe('staged');
  });

  it('keeps the staged id length across a restart: a block id of another length is still refused', async () => {
    const e = (await s.metadata.reserveEntry(ident('restaged'), T0))!;
    await s.blobs.putBlock(e.blobId, 'AAAA', body('first'), 5);
    await s.close();
    open();
    await expect(s.blobs.putBlock(e.blobId, 'AAAAAAAA', body('other'), 5)).rejects.toMatchObject({
      code: 'InvalidBlobOrBlock',
    });
    await s.blobs.putBlock(e.blobId, 'AAAB', body('second'), 6);
    await s.blobs.commitBlockList(
      e.blobId,
      [
        { kind: 'uncommitted', id: 'AAAA' },
        { kind: 'uncommitted', id: 'AAAB' },
      ],
      T0 + 1,
    );
    expect((await read(s, e.blobId)).toString()).toBe('firstsecond');
  });

  it('commits a block list by linking the staged files, not copying them', async () => {
    const e = (await s.metadata.reserveEntry(ident('parts'), T0))!;
    const a = randomBytes(70_000);
    const b = randomBytes(50_000);
    await s.blobs.putBlock(e.blobId, 'AAAA', body(a), a.length);
    await s.blobs.putBlock(e.blobId, 'AAAB', body(b), b.length);
    await s.blobs.putBlock(e.blobId, 'AAAC', body('never listed'), 12);
    const stagedInode = statSync(join(dataDir, 'staging', e.blobId, 'b000000')).ino;
    const list = [
      { kind: 'latest', id: 'AAAA' },
      { kind: 'uncommitted', id: 'AAAB' },
      { kind: 'latest', id: 'AAAA' }, // listed twice: one part, referenced twice
    ] as const;
    await s.blobs.commitBlockList(e.blobId, list, T0 + 1);
    await s.sweepBlobs(T0); // waits for the staging directory's removal
    const v1 = Buffer.concat([a, b, a]);
    expect((await read(s, e.blobId)).equals(v1)).toBe(true);
    const files = filesUnder(join(dataDir, 'blobs'));
    expect(files).toHaveLength(2);
    expect(files[0]).toMatch(new RegExp(`^${e.blobId.slice(0, 2)}/${e.blobId}\\.[0-9a-f]{16}/p0$`));
    expect(statSync(join(dataDir, 'blobs', files[0]!)).ino).toBe(stagedInode);
    expect(filesUnder(join(dataDir, 'staging'))).toEqual([]);

    // Ranges inside a part, across part boundaries and over the whole blob.
    const range = async (start: number, end: number) => {
      const chunks: Buffer[] = [];
      for await (const c of (await s.blobs.openBlob(e.blobId, { start, end })).stream)
        chunks.push(c as Buffer);
      return Buffer.concat(chunks);
    };
    for (const [start, end] of [
      [0, 0],
      [69_999, 70_000],
      [10, 119_999],
      [69_999, 120_000],
      [119_999, 119_999],
      [5, v1.length - 1],
      [300_000, 300_001],
    ] as const) {
      expect((await range(start, end)).equals(v1.subarray(start, end + 1))).toBe(true);
    }

    // A re-commit that reuses committed blocks links them from the previous generation, which goes.
    const before = (await s.blobs.getBlobProperties(e.blobId))!;
    const pinned = await s.blobs.openBlob(e.blobId, { start: 69_990, end: 70_009 });
    const c = randomBytes(1000);
    await s.blobs.putBlock(e.blobId, 'AAAD', body(c), c.length);
    await s.blobs.commitBlockList(
      e.blobId,
      [
        { kind: 'committed', id: 'AAAB' },
        { kind: 'latest', id: 'AAAD' },
        { kind: 'committed', id: 'AAAA' },
        { kind: 'latest', id: 'AAAB' },
      ],
      T0 + 2,
    );
    await s.sweepBlobs(T0);
    const v2 = Buffer.concat([b, c, a, b]);
    expect((await read(s, e.blobId)).equals(v2)).toBe(true);
    expect(await s.blobs.getBlobProperties(e.blobId)).toMatchObject({
      size: v2.length,
      createdAt: before.createdAt,
    });
    expect(filesUnder(join(dataDir, 'blobs'))).toHaveLength(3);
    const chunks: Buffer[] = [];
    for await (const chunk of pinned.stream) chunks.push(chunk as Buffer);
    expect(Buffer.concat(chunks).equals(v1.subarray(69_990, 70_010))).toBe(true);

    // Put Blob replaces the parts with one file; delete removes everything.
    await s.blobs.putBlob(e.blobId, body('one file'), 8, T0 + 3);
    await s.sweepBlobs(T0);
    expect(filesUnder(join(dataDir, 'blobs'))).toEqual([
      expect.stringMatching(new RegExp(`^${e.blobId.slice(0, 2)}/${e.blobId}\\.[0-9a-f]{16}$`)),
    ]);
    await s.blobs.putBlock(e.blobId, 'AAAA', body(a), a.length);
    await s.blobs.commitBlockList(e.blobId, [{ kind: 'latest', id: 'AAAA' }], T0 + 4);
    await s.deleteEntry(e.id, T0 + 5);
    await s.sweepBlobs(T0 + 5);
    expect(filesUnder(join(dataDir, 'blobs'))).toEqual([]);
    expect(readdirSync(join(dataDir, 'blobs', e.blobId.slice(0, 2)))).toEqual([]);
  });

  it('a failed block list leaves the staged blocks and no part files behind', async () => {
    const e = (await s.metadata.reserveEntry(ident('failed'), T0))!;
    await s.blobs.putBlock(e.blobId, 'AAAA', body('abc'), 3);
    await expect(
      s.blobs.commitBlockList(
        e.blobId,
        [
          { kind: 'latest', id: 'AAAA' },
          { kind: 'latest', id: 'AAAB' },
        ],
        T0,
      ),
    ).rejects.toMatchObject({ code: 'InvalidBlockList' });
    expect(filesUnder(join(dataDir, 'blobs'))).toEqual([]);
    expect(filesUnder(join(dataDir, 'staging'))).toEqual([join(e.blobId, 'b000000')]);
    await s.blobs.commitBlockList(e.blobId, [{ kind: 'latest', id: 'AAAA' }], T0);
    expect((await read(s, e.blobId)).toString()).toBe('abc');
  });

  it('reads and reuses block lists committed by schema 1 (one file per generation)', async () => {
    const e = (await s.metadata.reserveEntry(ident('legacy'), T0))!;
    await s.blobs.putBlob(e.blobId, body('aaabbbb'), 7, T0);
    await s.close();
    // Schema 1: no layout column; a block list's blocks were ranges of the one generation file.
    const { Database } = await import('./sqlite/driver.js');
    const db = new Database(join(dataDir, 'meta.sqlite'));
    db.exec(`
      CREATE TABLE blobs1 (blob_id TEXT PRIMARY KEY, generation TEXT NOT NULL, size_bytes INTEGER NOT NULL,
        etag TEXT NOT NULL, last_modified INTEGER NOT NULL, created_at INTEGER NOT NULL, retain_until INTEGER,
        blocks TEXT NOT NULL);
      INSERT INTO blobs1 SELECT blob_id, generation, size_bytes, etag, last_modified, created_at, retain_until,
        blocks FROM blobs;
      DROP TABLE blobs;
      ALTER TABLE blobs1 RENAME TO blobs;
      UPDATE blobs SET blocks = '[{"id":"AAAA","start":0,"end":3},{"id":"AAAB","start":3,"end":7}]';
      PRAGMA user_version = 1;
    `);
    db.close();
    open();
    expect((await read(s, e.blobId)).toString()).toBe('aaabbbb');
    await s.blobs.commitBlockList(
      e.blobId,
      [
        { kind: 'committed', id: 'AAAB' },
        { kind: 'committed', id: 'AAAA' },
        { kind: 'committed', id: 'AAAB' },
      ],
      T0 + 1,
    );
    expect((await read(s, e.blobId)).toString()).toBe('bbbbaaabbbb');
    const chunks: Buffer[] = [];
    for await (const c of (await s.blobs.openBlob(e.blobId, { start: 2, end: 8 })).stream)
      chunks.push(c as Buffer);
    expect(Buffer.concat(chunks).toString()).toBe('bbaaabb');
  });

  it('serves one process per data directory', async () => {
    expect(() => createFsStorage({ dataDir })).toThrow(/in use/);
    await s.close();
    open(); // released on close
  });

  it('refuses blob ids it did not make, before any path is built', async () => {
    const evil = ['../../../../tmp/evil', 'ABCDEF0123456789ABCDEF0123456789', '', `${'a'.repeat(32)}/..`];
    for (const blobId of evil) {
      await expect(s.blobs.putBlob(blobId, body('x'), 1, T0)).rejects.toMatchObject({ code: 'BlobNotFound' });
      await expect(s.blobs.putBlock(blobId, 'AAAA', body('x'), 1)).rejects.toMatchObject({
        code: 'BlobNotFound',
      });
      await expect(s.blobs.commitBlockList(blobId, [], T0)).rejects.toMatchObject({ code: 'BlobNotFound' });
      await expect(s.blobs.openBlob(blobId)).rejects.toMatchObject({ code: 'BlobNotFound' });
      expect(await s.blobs.getBlobProperties(blobId)).toBeUndefined();
    }
    expect(filesUnder(join(dataDir, 'blobs'))).toEqual([]);
    expect(filesUnder(join(dataDir, 'staging'))).toEqual([]);
  });

  it('keeps the WAL bounded (checkpoints happen)', async () => {
    for (let i = 0; i < 3000; i++) {
      const e = (await s.metadata.reserveEntry(ident(`wal-${i}`), T0))!;
      await s.metadata.commitEntry(e.id, 1, T0);
      await s.metadata.touchEntry(e.id, T0 + 1, T0 + 2);
    }
    // wal_autocheckpoint is 3,072 pages (12 MiB); without checkpoints this run writes ~100 MiB.
    expect(statSync(join(dataDir, 'meta.sqlite-wal')).size).toBeLessThan(16 * 1024 * 1024);
  });

  it('looks up prefixes in a few index steps, not a scan', async () => {
    const keys: string[] = [];
    for (let i = 0; i < 20_000; i++) {
      const key = `${['npm', 'pip', 'go'][i % 3]}-Linux-${randomBytes(8).toString('hex')}`;
      keys.push(key);
      await s.metadata.commitEntry((await s.metadata.reserveEntry(ident(key), T0))!.id, 1, T0);
    }
    const prefixes = Array.from({ length: 10_000 }, (_, i) =>
      i % 2
        ? keys[(i * 7919) % keys.length]!.slice(0, -3)
        : ['npm-', 'pip-Linux-', 'go-Linux-f', 'rust-'][i % 4]!,
    );
    const started = performance.now();
    let hits = 0;
    for (const p of prefixes)
      if (await s.metadata.findCommittedByPrefix('7', 'refs/heads/main', 'v1', p)) hits++;
    const ms = performance.now() - started;
    expect(hits).toBeGreaterThan(7000);
    // About 20 µs each here; a scan of 20,000 entries would take milliseconds each.
    expect(ms).toBeLessThan(20_000);
  });

  it('reads usage, the eviction order and idle entries from indexes, not a scan', async () => {
    for (let i = 0; i < 20_000; i++) {
      const e = (await s.metadata.reserveEntry(ident(`k-${i}`), T0))!;
      await s.metadata.commitEntry(e.id, 1000 + i, T0);
      await s.metadata.touchEntry(e.id, T0 + ((i * 7919) % 20_000), 0);
    }
    const started = performance.now();
    for (let i = 0; i < 2000; i++) {
      expect((await s.metadata.repositoryUsage('7')).count).toBe(20_000);
      expect((await s.metadata.listLeastRecentlyUsed('7', 1))[0]!.lastAccessedAt).toBe(T0);
      expect(await s.metadata.listIdleEntries(T0 + 1, 2)).toHaveLength(1);
    }
    const ms = performance.now() - started;
    expect((await s.metadata.repositoryUsage('7')).sizeBytes).toBe(20_000 * 1000 + (19_999 * 20_000) / 2);
    // About 70 µs per round here (150 ms in all); summing or sorting 20,000 entries would take
    // milliseconds per round.
    expect(ms).toBeLessThan(10_000);
  });

  it('opens a schema 2 database: usage totals are backfilled and then kept by triggers', async () => {
    await save('a', 'alpha');
    await save('b', 'bb');
    await s.close();
    const { Database } = await import('./sqlite/driver.js');
    const db = new Database(join(dataDir, 'meta.sqlite'));
    db.exec(`
      DROP TRIGGER entries_usage_update;
      DROP TRIGGER entries_usage_delete;
      DROP TABLE repository_usage;
      DROP INDEX entries_committed_lru;
      DROP INDEX entries_committed_idle;
      PRAGMA user_version = 2;
    `);
    db.close();
    open();
    expect(await s.metadata.repositoryUsage('7')).toEqual({ repositoryId: '7', sizeBytes: 7, count: 2 });
    await save('c', 'ccc');
    await s.deleteEntry((await s.metadata.findEntry(ident('a')))!.id, T0 + 3);
    expect(await s.metadata.repositoryUsage('7')).toEqual({ repositoryId: '7', sizeBytes: 5, count: 2 });
    expect((await s.metadata.listLeastRecentlyUsed('7', 5)).map((e) => e.key)).toEqual(['b', 'c']);
  });
});

/**
 * Real crashes: a child process runs the storage (transpiled from this directory's sources) and
 * is killed with SIGKILL at chosen moments; the test then opens the same data directory.
 */
describe('fs storage after SIGKILL', () => {
  let buildDir: string;
  let dataDir: string;
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    buildDir = await mkdtemp(join(tmpdir(), 'gha-cache-fs-build-'));
    const here = dirname(fileURLToPath(import.meta.url));
    // The driver's two better-sqlite3 specifiers, resolved from here (the build dir has no node_modules).
    const resolve = (name: string) => pathToFileURL(createRequire(import.meta.url).resolve(name)).href;
    const specifiers = /import\('(better-sqlite3(?:-node20)?)'\)/g;
    // Every source of this directory, and the one module it uses from outside it.
    const sources = readdirSync(here, { recursive: true, encoding: 'utf8' })
      .filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts'))
      .map((f) => join('storage', f));
    for (const name of [...sources, join('policies', 'rate-limiter.ts')]) {
      const { outputText } = ts.transpileModule(readFileSync(join(here, '..', name), 'utf8'), {
        compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2023 },
      });
      await mkdir(dirname(join(buildDir, name)), { recursive: true });
      writeFileSync(
        join(buildDir, name.replace(/\.ts$/, '.js')),
        outputText.replace(specifiers, (_, name: string) => `import('${resolve(name)}')`),
      );
    }
    writeFileSync(join(buildDir, 'package.json'), '{"type":"module"}');
    writeFileSync(
      join(buildDir, 'child.js'),
      `
      import { Readable } from 'node:stream';
      import { createFsStorage } from './storage/fs.js';
      const s = createFsStorage({ dataDir: process.argv[2] });
      const say = (m) => process.stdout.write(JSON.stringify(m) + '\\n');
      const id = (key) => ({ repositoryId: '7', scope: 'refs/heads/main', key, version: 'v1' });
      const e = await s.metadata.reserveEntry(id('stable'), 1);
      const content = Buffer.alloc(3 * 1024 * 1024, 'committed ');
      const props = await s.blobs.putBlob(e.blobId, Readable.from([content]), content.length, 2);
      await s.metadata.commitEntry(e.id, content.length, 3);
      const p = await s.metadata.reserveEntry(id('pending'), 4);
      await s.blobs.putBlock(p.blobId, 'AAAA', Readable.from([Buffer.from('staged')]), 6);
      const last = await s.metadata.reserveEntry(id('last-before-kill'), 5);
      await s.metadata.commitEntry(last.id, 0, 6);
      say({ blobId: e.blobId, pendingBlobId: p.blobId, etag: props.etag, lastId: last.id });
      // Now replace the blob with a body that never ends; the parent kills us mid-stream.
      let sent = 0;
      const endless = new Readable({ read() { sent += 65536; this.push(Buffer.alloc(65536, 'new ')); if (sent === 1048576) say('streaming'); } });
      await s.blobs.putBlob(e.blobId, endless, 1024 * 1024 * 1024, 7);
      `,
    );
  });
  afterAll(async () => {
    for (const c of children) c.kill('SIGKILL');
    await rm(buildDir, { recursive: true, force: true });
  });
  beforeEach(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'gha-cache-fs-crash-'));
  });
  afterEach(async () => {
    await rm(dataDir, { recursive: true, force: true });
  });

  it('a kill in the middle of replacing a blob loses nothing that was committed', async () => {
    const child = spawn(process.execPath, [join(buildDir, 'child.js'), dataDir], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    children.push(child);
    const messages: unknown[] = [];
    let buffered = '';
    child.stdout!.setEncoding('utf8');
    const streaming = new Promise<void>((resolve, reject) => {
      child.stdout!.on('data', (data: string) => {
        buffered += data;
        for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
          const message: unknown = JSON.parse(buffered.slice(0, nl));
          buffered = buffered.slice(nl + 1);
          messages.push(message);
          if (message === 'streaming') resolve();
        }
      });
      child.on('exit', (code) => reject(new Error(`child exited early with ${code}`)));
    });
    await streaming;
    const exited = once(child, 'exit');
    child.kill('SIGKILL');
    await exited;
    const state = messages[0] as { blobId: string; pendingBlobId: string; etag: string; lastId: number };
    expect(readdirSync(join(dataDir, 'tmp')).length).toBeGreaterThan(0); // the half-written body

    const s = createFsStorage({ dataDir });
    try {
      expect(readdirSync(join(dataDir, 'tmp'))).toEqual([]);
      expect(await s.blobs.getBlobProperties(state.blobId)).toMatchObject({
        etag: state.etag,
        size: 3 * 1024 * 1024,
      });
      expect((await read(s, state.blobId)).equals(Buffer.alloc(3 * 1024 * 1024, 'committed '))).toBe(true);
      expect((await s.metadata.findCommittedExact('7', 'refs/heads/main', 'v1', 'stable'))?.sizeBytes).toBe(
        3 * 1024 * 1024,
      );
      // The last transaction before the kill is there (WAL, synchronous=NORMAL survives SIGKILL).
      expect((await s.metadata.getEntry(state.lastId))?.state).toBe('committed');
      expect((await s.metadata.reserveEntry(ident('after'), T0))!.id).toBeGreaterThan(state.lastId);
      await s.blobs.commitBlockList(state.pendingBlobId, [{ kind: 'latest', id: 'AAAA' }], T0);
      expect((await read(s, state.pendingBlobId)).toString()).toBe('staged');
      const files = await readdir(join(dataDir, 'blobs', state.blobId.slice(0, 2)));
      expect(files.filter((f) => f.startsWith(state.blobId))).toHaveLength(1);
      expect(await readFile(join(dataDir, 'meta.sqlite'))).toBeTruthy();
    } finally {
      await s.close();
    }
  });
});
