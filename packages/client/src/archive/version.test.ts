import { describe, expect, it } from 'vitest';
import { cacheVersion, RAW_BLOB_VERSION } from './version.js';

describe('C-87: @actions/cache version vectors (docs/protocol.md §4.7)', () => {
  const linux = { platform: 'linux' as const };
  it.each([
    [['node_modules'], undefined, linux, 'b3e0c6cb5ecf32614eeb2997d905b9c297046d7cbf69062698f25b14b4cb0985'],
    [
      ['node_modules', 'dist'],
      undefined,
      linux,
      '165c3053bc646bf0d4fac17b1f5731caca6fe38e0e464715c0c3c6b6318bf436',
    ],
    [['node_modules'], 'zstd', linux, '273877e14fd65d270b87a198edbfa2db5a43de567c9a548d2a2505b408befe24'],
    [['node_modules'], 'gzip', linux, '470e252814dbffc9524891b17cf4e5749b26c1b5026e63dd3f00972db2393117'],
    [
      ['node_modules'],
      undefined,
      { platform: 'win32' as const },
      '2db19d6596dc34f51f0043120148827a264863f5c6ac857569c2af7119bad14e',
    ],
    [
      ['node_modules'],
      'zstd-without-long',
      linux,
      '7fcda33c1e1d849a13bcc06f49b9ab64efc01ca9dabe4d7a8d0d387feef4fc88',
    ],
    [
      ['~/.npm'],
      'zstd-without-long',
      linux,
      'c242501c19ada3dcced7a83b074ccb8e79f816602d4125493924624b38591de2',
    ],
  ] as const)('%j + %s on %j', (paths, compression, opts, expected) => {
    expect(cacheVersion(paths, compression, opts)).toBe(expected);
  });

  it('enableCrossOsArchive drops windows-only on win32', () => {
    expect(cacheVersion(['node_modules'], undefined, { platform: 'win32', enableCrossOsArchive: true })).toBe(
      'b3e0c6cb5ecf32614eeb2997d905b9c297046d7cbf69062698f25b14b4cb0985',
    );
  });

  it('the raw blob version is a fixed sha256', () => {
    expect(RAW_BLOB_VERSION).toMatch(/^[0-9a-f]{64}$/);
  });
});
