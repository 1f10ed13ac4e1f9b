/**
 * The two packages as a user gets them from the registry: `pnpm pack` each one, install the tarballs with
 * plain npm into an empty directory outside the workspace, and run the installed bins against each other.
 * This catches a missing `files` entry, a dependency left in devDependencies, a wrong `bin` or shebang, and
 * an `engines` range this Node.js does not satisfy.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CommandResult, runCommand } from '../peers/support.js';
import { type MockProcess, spawnMock } from '../support/cli.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const PACKAGES = ['client', 'mock-server'] as const;
const PNPM = ['-y', 'pnpm@10.34.8'];

let work: string;
let prefix: string;
let mock: MockProcess | undefined;

const ok = (r: CommandResult, what: string) => {
  expect(r.code, `${what} failed (${r.code ?? r.signal}):\n${r.stdout}\n${r.stderr}`).toBe(0);
  return r;
};
const bin = (name: string) => join(prefix, 'node_modules', '.bin', name);

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'gha-pack-'));
  const tarballs = join(work, 'tarballs');
  prefix = join(work, 'app');
  await mkdir(tarballs);
  await mkdir(prefix);
  for (const pkg of PACKAGES) {
    ok(
      await runCommand('npx', [...PNPM, 'pack', '--pack-destination', tarballs], {
        cwd: join(ROOT, 'packages', pkg),
        timeoutMs: 300_000,
      }),
      `pnpm pack ${pkg}`,
    );
  }
  const files = (await readdir(tarballs)).filter((f) => f.endsWith('.tgz')).map((f) => join(tarballs, f));
  expect(files).toHaveLength(2);
  await writeFile(join(prefix, 'package.json'), JSON.stringify({ name: 'app', private: true }));
  const install = ok(
    await runCommand(
      'npm',
      ['install', '--no-audit', '--no-fund', '--omit=dev', '--loglevel=warn', ...files],
      { cwd: prefix, timeoutMs: 900_000 },
    ),
    'npm install of the tarballs',
  );
  // npm warns (EBADENGINE) when a package's `engines` excludes this Node.js: ours must not.
  const ours = install.stderr.split('\n').filter((l) => /EBADENGINE/.test(l) && /@gha-cache\//.test(l));
  expect(ours, install.stderr).toEqual([]);
}, 1_200_000);

afterAll(async () => {
  await mock?.stop('SIGKILL');
  await rm(work, { recursive: true, force: true });
});

describe('packed and installed with npm', () => {
  it('ships only the built code, the bins and the README', async () => {
    for (const [pkg, name] of [
      ['client', 'gha-cache'],
      ['mock-server', 'gha-cache-mock'],
    ] as const) {
      const dir = join(prefix, 'node_modules', '@gha-cache', pkg);
      const entries = (await readdir(dir)).sort();
      // The mock also ships its web UI's static files.
      const ui = pkg === 'mock-server' ? ['ui'] : [];
      expect(entries).toEqual(['README.md', 'bin', 'dist', 'package.json', ...ui]);
      const manifest = JSON.parse(await readFile(join(dir, 'package.json'), 'utf8'));
      expect(manifest.bin).toEqual({ [name]: `./bin/${name}.js` });
      expect(JSON.stringify(manifest.dependencies ?? {})).not.toContain('workspace:');
    }
  });

  it('gha-cache-mock serve and gha-cache put/get/save/restore work against each other', async () => {
    // fs storage: the installed better-sqlite3 must build or load on this Node.js.
    const dataDir = join(work, 'data');
    mock = await spawnMock(['--data-dir', dataDir], 60_000, [bin('gha-cache-mock')]);
    const env = { ...process.env, ...mock.env };
    const run = async (args: string[], what = args[0]!) =>
      ok(
        await runCommand(bin('gha-cache'), args, { cwd: work, env, timeoutMs: 120_000 }),
        `gha-cache ${what}`,
      );

    const data = randomBytes(3 * 1024 * 1024 + 17);
    await writeFile(join(work, 'blob.bin'), data);
    await run(['put', 'pack-blob', join(work, 'blob.bin')]);
    await run(['get', 'pack-blob', join(work, 'blob.out')]);
    expect((await readFile(join(work, 'blob.out'))).equals(data)).toBe(true);

    const tree = join(work, 'tree');
    await mkdir(join(tree, 'sub'), { recursive: true });
    await writeFile(join(tree, 'a.txt'), 'alpha');
    await writeFile(join(tree, 'sub', 'b.bin'), data.subarray(0, 100_000));
    await run(['save', '--path', 'tree', '--key', 'pack-tree']);
    await rm(tree, { recursive: true });
    await run(['restore', '--path', 'tree', '--key', 'pack-tree', '--fail-on-miss']);
    expect(await readFile(join(tree, 'a.txt'), 'utf8')).toBe('alpha');
    expect((await readFile(join(tree, 'sub', 'b.bin'))).equals(data.subarray(0, 100_000))).toBe(true);

    // A token minted offline from the data dir's secret is accepted by the running server.
    const minted = await runCommand(bin('gha-cache-mock'), ['token', '--data-dir', dataDir], {
      cwd: work,
      timeoutMs: 60_000,
    });
    const token = ok(minted, 'gha-cache-mock token').stdout.trim();
    expect(token).toMatch(/^ey[\w-]+\.[\w-]+\.[\w-]+$/);
    const lookup = await runCommand(bin('gha-cache'), ['lookup', 'pack-blob'], {
      cwd: work,
      env: { ...env, ACTIONS_RUNTIME_TOKEN: token },
      timeoutMs: 60_000,
    });
    expect(ok(lookup, 'gha-cache lookup').stdout.trim()).toBe('pack-blob');
  });
});
