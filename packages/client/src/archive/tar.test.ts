import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ArchiveError } from '../errors.js';
import { detectCompression } from './compression.js';
import { createArchive, extractArchive } from './tar.js';
import type { CompressionMethod } from './version.js';

describe('tar archives like @actions/cache', () => {
  let root: string;
  beforeAll(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'gha-tar-'));
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('detects zstd like @actions/cache (this machine has a zstd binary)', async () => {
    expect(await detectCompression()).toBe('zstd-without-long');
    expect(await detectCompression('no-such-zstd-binary')).toBe('gzip');
  });

  it.each(['zstd-without-long', 'gzip'] as CompressionMethod[])(
    'round-trips files with %s',
    async (compression) => {
      const src = path.join(root, `src-${compression}`);
      const dst = path.join(root, `dst-${compression}`);
      const arch = path.join(root, `arch-${compression}`);
      await mkdir(path.join(src, 'a/b'), { recursive: true });
      await mkdir(arch);
      await writeFile(path.join(src, 'a/b/f.txt'), 'hello');
      await writeFile(path.join(src, 'top.bin'), Buffer.alloc(1000, 7));
      const archive = await createArchive(arch, ['a', 'top.bin'], { workingDirectory: src, compression });
      expect(path.basename(archive)).toBe(compression === 'gzip' ? 'cache.tgz' : 'cache.tzst');
      await extractArchive(archive, { workingDirectory: dst, compression });
      expect(await readFile(path.join(dst, 'a/b/f.txt'), 'utf8')).toBe('hello');
      expect((await readFile(path.join(dst, 'top.bin'))).equals(Buffer.alloc(1000, 7))).toBe(true);
    },
  );

  it('a failing tar is an ArchiveError with its stderr', async () => {
    const arch = path.join(root, 'arch-bad');
    await mkdir(arch);
    const err = await extractArchive(path.join(arch, 'missing.tzst'), {
      workingDirectory: path.join(root, 'x'),
      compression: 'zstd-without-long',
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ArchiveError);
    expect((err as ArchiveError).exitCode).not.toBe(0);
  });
});
