import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolvePaths } from './paths.js';

describe('resolvePaths (@actions/glob semantics, implicitDescendants: false)', () => {
  let root: string;
  let ws: string;
  let home: string;
  beforeAll(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'gha-paths-'));
    ws = path.join(root, 'ws');
    home = path.join(root, 'home');
    for (const d of [
      'node_modules/a',
      'dist/sub',
      '.hidden',
      'pkgs/one/build',
      'pkgs/two/build',
      'pkgs/three',
    ]) {
      await mkdir(path.join(ws, d), { recursive: true });
    }
    await writeFile(path.join(ws, 'dist/x.js'), 'x');
    await writeFile(path.join(ws, 'dist/sub/y.js'), 'y');
    await writeFile(path.join(ws, 'dist/z.map'), 'z');
    await writeFile(path.join(ws, '.hidden/f'), 'h');
    await mkdir(path.join(home, '.npm'), { recursive: true });
    await symlink(ws, path.join(ws, 'pkgs/loop'));
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });
  const opts = () => ({ cwd: ws, workingDirectory: ws, homeDirectory: home });

  it('literal paths that exist, relative to the workspace; missing ones vanish', async () => {
    expect(await resolvePaths(['node_modules', 'missing', 'dist/x.js'], opts())).toEqual([
      'node_modules',
      'dist/x.js',
    ]);
  });

  it('the workspace itself is "."', async () => {
    expect(await resolvePaths([ws], opts())).toEqual(['.']);
  });

  it('~ is the home directory; paths outside the workspace keep ../', async () => {
    expect(await resolvePaths(['~/.npm'], opts())).toEqual(['../home/.npm']);
  });

  it('* and ? within a segment, dot files included', async () => {
    expect((await resolvePaths(['dist/*.js', '.h?dden/*'], opts())).sort()).toEqual([
      '.hidden/f',
      'dist/x.js',
    ]);
    expect((await resolvePaths(['pkgs/*/build'], opts())).sort()).toEqual([
      'pkgs/one/build',
      'pkgs/two/build',
    ]);
  });

  it('** spans segments and includes the directory itself', async () => {
    expect((await resolvePaths(['dist/**'], opts())).sort()).toEqual([
      'dist',
      'dist/sub',
      'dist/sub/y.js',
      'dist/x.js',
      'dist/z.map',
    ]);
    expect((await resolvePaths(['dist/**/*.js'], opts())).sort()).toEqual(['dist/sub/y.js', 'dist/x.js']);
  });

  it('! excludes, # comments and blank lines are skipped, multi-line entries split', async () => {
    expect((await resolvePaths(['dist/*\n!dist/*.map\n# comment\n', ''], opts())).sort()).toEqual([
      'dist/sub',
      'dist/x.js',
    ]);
  });

  it('[...] classes, including negation', async () => {
    expect(await resolvePaths(['dist/[xy].js'], opts())).toEqual(['dist/x.js']);
    expect(await resolvePaths(['dist/[!x].map'], opts())).toEqual(['dist/z.map']);
  });

  it('survives a symlink loop under **', async () => {
    const out = await resolvePaths(['pkgs/**/build'], opts());
    expect(out).toContain('pkgs/one/build');
  });
});
