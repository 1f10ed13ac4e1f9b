/**
 * Interop with the real `@actions/cache` 6.3.0 through the mock over real sockets, files compared byte for
 * byte: `gha-cache save` → `@actions/cache` restoreCache, and `@actions/cache` saveCache → `gha-cache restore`,
 * below and above the 128 MiB single-shot limit.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as actionsCache from '@actions/cache';
import { type MockServer, startMockServer } from '@gha-cache/mock-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { digestTree, writeRandomFile, writeTree } from '../support/files.js';
import { runGhaCache } from './support/gha-cache-cli.js';

const MiB = 1024 * 1024;

let mock: MockServer;
let work: string;
const saved: Record<string, string | undefined> = {};

/** @actions/cache reads these at call time; GITHUB_SERVER_URL must stay unset (§6.1 GHES trap). */
function setEnv(vars: Record<string, string | undefined>): void {
  for (const [k, v] of Object.entries(vars)) {
    if (!(k in saved)) saved[k] = process.env[k];
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
}

beforeAll(async () => {
  mock = await startMockServer({ storage: 'memory' });
  work = await mkdtemp(join(tmpdir(), 'gha-interop-'));
  await mkdir(join(work, 'runner-temp'));
  setEnv({
    ...mock.env,
    RUNNER_TEMP: join(work, 'runner-temp'),
    GITHUB_SERVER_URL: undefined,
    ACTIONS_CACHE_MODE: undefined,
  });
});

afterAll(async () => {
  for (const [k, v] of Object.entries(saved)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  await mock?.close();
  if (work) await rm(work, { recursive: true, force: true });
});

async function makeWorkspace(name: string, bigBytes: number): Promise<string> {
  const ws = join(work, name);
  await writeTree(ws, {
    'cache/a.txt': 'alpha\n',
    'cache/nested/deeper/b.json': '{"b":1}',
    'cache/with space/c d.txt': 'spaces',
    'cache/empty.txt': '',
    'cache/.hidden': 'dot file',
    'other.txt': 'not cached',
  });
  await writeRandomFile(join(ws, 'cache/big.bin'), bigBytes);
  return ws;
}

function cliEnv(ws: string): Record<string, string> {
  return {
    ACTIONS_RESULTS_URL: mock.env.ACTIONS_RESULTS_URL,
    ACTIONS_RUNTIME_TOKEN: mock.token,
    GITHUB_WORKSPACE: ws,
    RUNNER_TEMP: join(work, 'runner-temp'),
  };
}

describe.each([
  ['below 128 MiB (Put Blob)', 5 * MiB],
  ['above 128 MiB (Put Block ×3)', 130 * MiB],
])('interop %s', (label, bigBytes) => {
  it('gha-cache save → @actions/cache restoreCache, byte for byte', async () => {
    const ws = await makeWorkspace(`cli-to-js-${bigBytes}`, bigBytes);
    const pattern = join(ws, 'cache');
    const before = await digestTree(join(ws, 'cache'));
    const key = `cli-to-js-${label}`;
    const save = await runGhaCache(['save', '--path', pattern, '--key', key, '--json', '-q'], {
      env: cliEnv(ws),
      cwd: ws,
    });
    expect(save.code, save.stderr).toBe(0);
    expect(save.json()).toMatchObject({ saved: true });
    await rm(join(ws, 'cache'), { recursive: true });

    setEnv({ GITHUB_WORKSPACE: ws });
    const hit = await actionsCache.restoreCache([pattern], key);
    expect(hit).toBe(key);
    expect(await digestTree(join(ws, 'cache'))).toEqual(before);
  });

  it('@actions/cache saveCache → gha-cache restore, byte for byte', async () => {
    const ws = await makeWorkspace(`js-to-cli-${bigBytes}`, bigBytes);
    const pattern = join(ws, 'cache');
    const before = await digestTree(join(ws, 'cache'));
    const key = `js-to-cli-${label}`;
    setEnv({ GITHUB_WORKSPACE: ws });
    expect(await actionsCache.saveCache([pattern], key)).toBeGreaterThan(0);
    await rm(join(ws, 'cache'), { recursive: true });

    const restore = await runGhaCache(
      ['restore', '--path', pattern, '--key', `${key}-newer`, '--restore-key', key, '--json', '-q'],
      { env: cliEnv(ws), cwd: ws },
    );
    expect(restore.code, restore.stderr).toBe(0);
    expect(restore.json()).toMatchObject({ hit: true, matchedKey: key, exactMatch: false });
    expect(await digestTree(join(ws, 'cache'))).toEqual(before);
  });
});

it('relative patterns: same version hash and workspace-relative entries on both sides', async () => {
  const ws = await makeWorkspace('relative', MiB);
  const before = await digestTree(join(ws, 'cache'));
  const save = await runGhaCache(['save', '--path', 'cache', '--key', 'relative-1', '-q'], {
    env: cliEnv(ws),
    cwd: ws,
  });
  expect(save.code, save.stderr).toBe(0);
  // @actions/cache resolves relative patterns against process.cwd(); an absolute-free lookup suffices here:
  // the version only depends on the pattern strings, so lookupOnly proves the hash is the same.
  setEnv({ GITHUB_WORKSPACE: ws });
  expect(await actionsCache.restoreCache(['cache'], 'relative-1', [], { lookupOnly: true })).toBe(
    'relative-1',
  );
  const ws2 = join(work, 'relative-elsewhere');
  await mkdir(ws2);
  const restore = await runGhaCache(['restore', '--path', 'cache', '--key', 'relative-1', '-q'], {
    env: cliEnv(ws2),
    cwd: ws2,
  });
  expect(restore.code, restore.stderr).toBe(0);
  expect(await digestTree(join(ws2, 'cache'))).toEqual(before);
});
