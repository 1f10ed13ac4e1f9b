/**
 * The real `@actions/cache` (6.x and 4.x, from npm) saving and restoring through the mock over real sockets.
 * Covers C-90 and the save/restore semantics users rely on.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as cache6 from '@actions/cache';
import * as cache4 from '@actions/cache-v4';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { digestTree, writeRandomFile, writeTree } from '../support/files.js';
import { startTestMock, type TestMock } from '../support/mock.js';
import { useActionsCacheEnv, withRuntimeToken } from '../support/stdout.js';

type CacheLib = Pick<typeof cache6, 'saveCache' | 'restoreCache'>;
const LIBS: [string, CacheLib][] = [
  ['@actions/cache 6.3.0', cache6],
  ['@actions/cache 4.1.0', cache4 as unknown as CacheLib],
];

let mock: TestMock;
let work: string;
let restoreEnv: (() => void) | undefined;

beforeAll(async () => {
  mock = await startTestMock();
  work = await mkdtemp(join(tmpdir(), 'gha-actions-cache-'));
  restoreEnv = await useActionsCacheEnv(mock.env, work);
});

afterAll(async () => {
  restoreEnv?.();
  await mock?.dispose();
  await rm(work, { recursive: true, force: true });
});

let n = 0;
async function freshDir(files: Record<string, string | Buffer>): Promise<string> {
  const dir = join(work, `dir-${n++}`);
  await writeTree(dir, files);
  return dir;
}

describe.each(LIBS)('%s', (_name, lib) => {
  it('C-90: saves and restores a tiny directory byte for byte', async () => {
    const dir = await freshDir({
      'a.txt': 'hello',
      'sub/b.bin': Buffer.from([0, 1, 2, 255]),
      'sub/deep/c': '',
    });
    const before = await digestTree(dir);
    const key = `tiny-${_name}`;
    expect(await lib.saveCache([dir], key)).toBeGreaterThan(0);
    await rm(dir, { recursive: true });
    expect(await lib.restoreCache([dir], key)).toBe(key);
    expect(await digestTree(dir)).toEqual(before);
  });

  it('C-90: saves and restores a few MB of incompressible data (one Put Blob)', async () => {
    const dir = join(work, `dir-${n++}`);
    await writeRandomFile(join(dir, 'blob.bin'), 5 * 1024 * 1024 + 17);
    await writeTree(dir, { 'x.txt': 'x'.repeat(100_000) });
    const before = await digestTree(dir);
    const key = `mb-${_name}`;
    expect(await lib.saveCache([dir], key)).toBeGreaterThan(0);
    await rm(dir, { recursive: true });
    expect(await lib.restoreCache([dir], key)).toBe(key);
    expect(await digestTree(dir)).toEqual(before);
    const puts = mock.requests().filter((r) => r.method === 'PUT');
    expect(puts.at(-1)?.op).toBe('PutBlob');
  });

  it('restore keys match by prefix; the newest prefix match wins; exact beats prefix', async () => {
    const dir = await freshDir({ 'f.txt': 'one' });
    const p = `prefix-${_name}-`;
    await lib.saveCache([dir], `${p}a`);
    await writeTree(dir, { 'f.txt': 'two' });
    await lib.saveCache([dir], `${p}b`);
    await writeTree(dir, { 'f.txt': 'three' });
    await lib.saveCache([dir], `${p}`);
    // Newest prefix match for a restore key.
    await rm(dir, { recursive: true });
    expect(await lib.restoreCache([dir], `${p}zzz`, [`${p}`])).toBe(`${p}`);
    // Exact primary beats a newer prefix match.
    expect(await lib.restoreCache([dir], `${p}a`, [`${p}`])).toBe(`${p}a`);
    expect(await digestTree(dir)).toEqual(await digestTree(await freshDir({ 'f.txt': 'one' })));
    // A primary key that is a prefix gets the newest entry starting with it.
    expect(await lib.restoreCache([dir], `${p}b`)).toBe(`${p}b`);
  });

  it('different paths (another version) miss', async () => {
    const dir = await freshDir({ 'f.txt': 'x' });
    const key = `paths-${_name}`;
    await lib.saveCache([dir], key);
    const other = await freshDir({ 'g.txt': 'y' });
    expect(await lib.restoreCache([other], key)).toBeUndefined();
  });

  it('a duplicate save is rejected and the first content stays', async () => {
    const dir = await freshDir({ 'f.txt': 'first' });
    const key = `dup-${_name}`;
    expect(await lib.saveCache([dir], key)).toBeGreaterThan(0);
    await writeTree(dir, { 'f.txt': 'second' });
    const { result, output } = await withRuntimeToken(mock.token, () => lib.saveCache([dir], key));
    expect(result).toBe(-1);
    expect(output).toMatch(/another job may be creating this cache/);
    await rm(dir, { recursive: true });
    expect(await lib.restoreCache([dir], key)).toBe(key);
    expect(await digestTree(dir)).toEqual(await digestTree(await freshDir({ 'f.txt': 'first' })));
  });

  it("with GitHub's visibility delay: a restore right after the save misses, a second save is refused, later it hits", async () => {
    mock.app.mock.policies.update({ visibilityDelayMs: 5000 });
    try {
      const dir = await freshDir({ 'f.txt': 'eventually' });
      const before = await digestTree(dir);
      const key = `visibility-${_name}`;
      expect(await lib.saveCache([dir], key)).toBeGreaterThan(0);
      await rm(dir, { recursive: true });
      // The next job step restores at once: the entry is committed but not visible yet.
      expect(await lib.restoreCache([dir], key)).toBeUndefined();
      // A job that saves the same key meanwhile is told another job may be creating it (409).
      await writeTree(dir, { 'f.txt': 'second' });
      const again = await withRuntimeToken(mock.token, () => lib.saveCache([dir], key));
      expect(again.result).toBe(-1);
      expect(again.output).toMatch(/another job may be creating this cache/);
      await rm(dir, { recursive: true });
      mock.app.mock.clock.advance(5000);
      expect(await lib.restoreCache([dir], key)).toBe(key);
      expect(await digestTree(dir)).toEqual(before);
    } finally {
      mock.app.mock.policies.update({ visibilityDelayMs: 0 });
    }
  });

  it('a read-only token restores but cannot save', async () => {
    const dir = await freshDir({ 'f.txt': 'ro' });
    const key = `ro-${_name}`;
    await lib.saveCache([dir], key);
    const readOnly = mock.mintToken([{ scope: 'refs/heads/main', permission: 1 }]);
    const denied = await withRuntimeToken(readOnly, () => lib.saveCache([dir], `${key}-new`));
    expect(denied.result).toBe(-1);
    expect(denied.output).toMatch(/cache write denied/);
    await rm(dir, { recursive: true });
    const restored = await withRuntimeToken(readOnly, () => lib.restoreCache([dir], key));
    expect(restored.result).toBe(key);
  });

  it("a feature-branch token reads main's entries, not the reverse", async () => {
    const dir = await freshDir({ 'f.txt': 'main' });
    const key = `branch-${_name}`;
    await lib.saveCache([dir], `${key}-main`);
    const feature = mock.mintToken([
      { scope: 'refs/heads/feature', permission: 3 },
      { scope: 'refs/heads/main', permission: 1 },
    ]);
    await writeTree(dir, { 'f.txt': 'feature' });
    expect(
      (await withRuntimeToken(feature, () => lib.saveCache([dir], `${key}-feature`))).result,
    ).toBeGreaterThan(0);
    expect((await withRuntimeToken(feature, () => lib.restoreCache([dir], `${key}-main`))).result).toBe(
      `${key}-main`,
    );
    expect(await lib.restoreCache([dir], `${key}-feature`)).toBeUndefined();
    // The feature branch's own entry wins over main's for a shared prefix.
    expect((await withRuntimeToken(feature, () => lib.restoreCache([dir], `${key}-`))).result).toBe(
      `${key}-feature`,
    );
  });
});

describe('@actions/cache 6.3.0 above 128 MiB', () => {
  it('C-90: saves and restores 136 MiB of incompressible data through Put Block + Put Block List', async () => {
    const dir = join(work, `big-${n++}`);
    await writeRandomFile(join(dir, 'big.bin'), 136 * 1024 * 1024);
    const before = await digestTree(dir);
    const from = mock.requests().length;
    expect(await cache6.saveCache([dir], 'big-136')).toBeGreaterThan(0);
    const ops = mock
      .requests()
      .slice(from)
      .map((r) => r.op);
    expect(ops.filter((o) => o === 'PutBlock').length).toBe(3);
    expect(ops).toContain('PutBlockList');
    expect(ops).not.toContain('PutBlob');
    await rm(dir, { recursive: true });
    expect(await cache6.restoreCache([dir], 'big-136')).toBe('big-136');
    expect(await digestTree(dir)).toEqual(before);
  });
});
