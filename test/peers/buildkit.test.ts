/**
 * The real BuildKit (buildkitd + buildctl built from github.com/moby/buildkit, see test/peers/buildkit/go.mod)
 * exports and imports its `type=gha` cache through the mock (docs/protocol.md §6.2, C-92). Each build runs in a
 * fresh buildkitd with its own root dir, so an import can only be satisfied from the mock.
 */
import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { digestTree, writeRandomFile, writeTree } from '../support/files.js';
import { type LogLine, startTestMock, type TestMock } from '../support/mock.js';
import type { InstalledPeers } from './install.mjs';
import { buildInFreshDaemon, requirePeers, type Vertex } from './support.js';

const MiB = 1024 * 1024;
const COPY_STEPS = [
  '[1/4] COPY a.txt /a.txt',
  '[2/4] COPY b.txt /b.txt',
  '[3/4] COPY big.bin /big.bin',
  '[4/4] COPY d.txt /d.txt',
];

let peers: Required<Pick<InstalledPeers, 'buildkit' | 'runc'>>;
let mock: TestMock;
let work: string;
let ctxDir: string;

beforeAll(async () => {
  peers = await requirePeers(['runc', 'buildkit']);
  console.log(`[peers] testing BuildKit ${peers.buildkit.version} with runc ${peers.runc.version}`);
  mock = await startTestMock();
  work = await mkdtemp(join(tmpdir(), 'gha-buildkit-'));
  ctxDir = join(work, 'ctx');
  await writeTree(ctxDir, {
    Dockerfile:
      'FROM scratch\nCOPY a.txt /a.txt\nCOPY b.txt /b.txt\nCOPY big.bin /big.bin\nCOPY d.txt /d.txt\n',
    'a.txt': 'alpha\n',
    'b.txt': 'bravo\n',
    'd.txt': 'delta\n',
  });
  // Above 1 MiB so that BuildKit uploads this layer as Put Blocks + Put Block List (§6.2).
  await writeRandomFile(join(ctxDir, 'big.bin'), 3 * MiB + 123);
});

afterAll(async () => {
  await mock?.dispose();
  if (work) await rm(work, { recursive: true, force: true });
});

interface BuildResult {
  vertices: Map<string, Vertex>;
  output: string;
  /** Mock request-log lines of this build only. */
  requests: LogLine[];
  /** buildctl's exit code (0 unless `allowFailure`) and its error output. */
  code: number | null;
  stderr: string;
}

/** Runs one `buildctl build` in a brand-new buildkitd (empty state), then stops the daemon. */
async function buildFresh(
  name: string,
  opts: { context?: string; exportCache?: string; importCache?: string; allowFailure?: boolean },
): Promise<BuildResult> {
  const before = mock.requests().length;
  const { result, vertices, output, daemonLog } = await buildInFreshDaemon({
    peers,
    dir: join(work, name),
    context: opts.context ?? ctxDir,
    args: [
      ...(opts.exportCache ? ['--export-cache', opts.exportCache] : []),
      ...(opts.importCache ? ['--import-cache', opts.importCache] : []),
    ],
  });
  if (result.code !== 0 && !(opts.allowFailure && !result.timedOut)) {
    throw new Error(
      `buildctl ${name} failed (exit ${result.code ?? result.signal}${result.timedOut ? ', timed out' : ''}):\n` +
        `${result.stderr.slice(-6000)}\n--- buildkitd log (tail) ---\n${daemonLog.slice(-8000)}`,
    );
  }
  return {
    vertices,
    output,
    requests: mock.requests().slice(before),
    code: result.code,
    stderr: result.stderr,
  };
}

function gha(scope: string, extra = '', token = mock.token, url = mock.url): string {
  return `type=gha,url_v2=${url}/,token=${token},scope=${scope}${extra}`;
}

function cachedSteps(result: BuildResult): Record<string, boolean> {
  return Object.fromEntries(COPY_STEPS.map((s) => [s, result.vertices.get(s)?.cached ?? false]));
}

const twirp = (requests: LogLine[], op: string) => requests.filter((r) => r.op === op);

describe('BuildKit type=gha cache against the mock', () => {
  let first: BuildResult;

  it('C-92: exports a FROM scratch + COPY build with mode=max: layers and index over JSON Twirp + Azure blobs', async () => {
    first = await buildFresh('export', { exportCache: gha('main', ',mode=max') });
    expect(cachedSteps(first)).toEqual(Object.fromEntries(COPY_STEPS.map((s) => [s, false])));
    // GO speaks JSON only (§6.2); every request the mock saw succeeded.
    for (const r of first.requests.filter((r) => r.url?.includes('/twirp/'))) expect(r.encoding).toBe('json');
    expect(first.requests.filter((r) => (r.status ?? 0) >= 400)).toEqual([]);
    const created = twirp(first.requests, 'CreateCacheEntry').map((r) => r.key);
    expect(created.filter((k) => k?.startsWith('buildkit-blob-1-sha256:')).length).toBeGreaterThanOrEqual(3);
    expect(created.filter((k) => k?.startsWith('index-main-1-'))).toEqual([
      expect.stringMatching(/^index-main-1-[0-9a-f]{8}#1$/),
    ]);
    expect(twirp(first.requests, 'FinalizeCacheEntryUpload').every((r) => r.status === 200)).toBe(true);
    // The 3 MiB layer went up in 1 MiB blocks.
    expect(twirp(first.requests, 'PutBlock').length).toBeGreaterThanOrEqual(4);
    expect(twirp(first.requests, 'PutBlockList')).toHaveLength(1);
    expect(await digestTree(first.output)).toEqual({
      'a.txt': expect.any(String),
      'b.txt': expect.any(String),
      'big.bin': expect.any(String),
      'd.txt': expect.any(String),
    });
  });

  it('C-92: imports into an empty BuildKit state: every COPY layer is CACHED and the output is byte-identical', async () => {
    const second = await buildFresh('import', { importCache: gha('main') });
    expect(cachedSteps(second)).toEqual(Object.fromEntries(COPY_STEPS.map((s) => [s, true])));
    expect(await digestTree(second.output)).toEqual(await digestTree(first.output));
    const lookups = twirp(second.requests, 'GetCacheEntryDownloadURL');
    expect(lookups.find((r) => r.key?.startsWith('index-main-1-'))?.match).not.toBe('miss');
    expect(twirp(second.requests, 'GetBlob').length).toBeGreaterThanOrEqual(4); // index + layers
    expect(twirp(second.requests, 'CreateCacheEntry')).toEqual([]);
  });

  it('does not see the cache of another scope', async () => {
    const other = await buildFresh('other-scope', { importCache: gha('other') });
    expect(cachedSteps(other)).toEqual(Object.fromEntries(COPY_STEPS.map((s) => [s, false])));
    const lookups = twirp(other.requests, 'GetCacheEntryDownloadURL');
    expect(lookups.map((r) => [r.key?.replace(/-[0-9a-f]{8}$/, ''), r.match])).toEqual([
      ['index-other-1', 'miss'],
    ]);
    // The miss says why: no index of this scope, and the nearest key is main's index.
    expect(lookups[0]).toMatchObject({ client: 'buildkit', outcome: 'miss', missReason: 'no-such-key' });
    expect(lookups[0]?.reason).toMatch(/nearest: "index-main-1-[0-9a-f]{8}#1"/);
    expect(twirp(other.requests, 'GetBlob')).toEqual([]);
  });

  it('reads the base branch cache through a read-only token scope', async () => {
    // A feature-branch job: writes refs/heads/feature, reads refs/heads/main (docs/protocol.md §4.8).
    const token = mock.mintToken([
      { scope: 'refs/heads/feature', permission: 3 },
      { scope: 'refs/heads/main', permission: 1 },
    ]);
    const feature = await buildFresh('feature-branch', { importCache: gha('main', '', token) });
    expect(cachedSteps(feature)).toEqual(Object.fromEntries(COPY_STEPS.map((s) => [s, true])));
    expect(await digestTree(feature.output)).toEqual(await digestTree(first.output));
  });

  it('after one file changes, re-uses the layers before it and exports only what is new', async () => {
    const changed = join(work, 'ctx-changed');
    await cp(ctxDir, changed, { recursive: true });
    await writeRandomFile(join(changed, 'big.bin'), 3 * MiB + 456);
    const firstBlobs = new Set(twirp(first.requests, 'CreateCacheEntry').map((r) => r.key));
    const third = await buildFresh('changed', {
      context: changed,
      importCache: gha('main'),
      exportCache: gha('main', ',mode=max'),
    });
    expect(cachedSteps(third)).toEqual({
      [COPY_STEPS[0]!]: true,
      [COPY_STEPS[1]!]: true,
      [COPY_STEPS[2]!]: false,
      [COPY_STEPS[3]!]: false,
    });
    expect(await digestTree(third.output)).toEqual(
      await digestTree(changed).then(({ Dockerfile: _, ...rest }) => rest),
    );
    const created = twirp(third.requests, 'CreateCacheEntry')
      .filter((r) => r.status === 200)
      .map((r) => r.key);
    const newBlobs = created.filter((k) => k?.startsWith('buildkit-blob-1-'));
    expect(newBlobs.length).toBeGreaterThanOrEqual(1);
    for (const k of newBlobs) expect(firstBlobs.has(k)).toBe(false);
    expect(created.filter((k) => k?.startsWith('index-main-1-'))).toEqual([expect.stringMatching(/#2$/)]);
    // And a later import gets the new index (the newest #N, §6.2).
    const fourth = await buildFresh('changed-import', { context: changed, importCache: gha('main') });
    expect(cachedSteps(fourth)).toEqual(Object.fromEntries(COPY_STEPS.map((s) => [s, true])));
  });

  it('speaking the retired v1 protocol (a bare url=), the build fails with a message that says to use v2', async () => {
    const v1 = `type=gha,url=${mock.url}/,token=${mock.token},scope=v1`;
    const result = await buildFresh('v1', { exportCache: v1, allowFailure: true });
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/API v1 \(_apis\/artifactcache\) is not supported: use v2/);
    expect(result.requests.filter((r) => r.url?.includes('/_apis/artifactcache'))).not.toEqual([]);
  });

  describe('while the service answers 429 or 500 (mock-side fault rules)', () => {
    afterEach(() => {
      mock.faults.clear();
    });

    it('429 with Retry-After for a while: BuildKit waits, retries and the export lands', async () => {
      const rule = mock.faults.add({
        op: 'CreateCacheEntry',
        times: 3,
        action: { type: 'status', status: 429, retryAfterSeconds: 1 },
      });
      const exported = await buildFresh('export-429', { exportCache: gha('rate-limited', ',mode=max') });
      expect(exported.code).toBe(0);
      // 3 reservations answered 429 by the rule, retried; every reservation then succeeded.
      const creates = twirp(exported.requests, 'CreateCacheEntry');
      expect(creates.filter((r) => r.status === 429)).toHaveLength(3);
      expect(creates.filter((r) => r.status === 429).every((r) => r.fault === rule.id)).toBe(true);
      expect(creates.filter((r) => r.status !== 429).every((r) => r.status === 200)).toBe(true);
      expect(mock.faults.list()[0]).toMatchObject({ id: rule.id, fired: 3 });
      const imported = await buildFresh('import-429', { importCache: gha('rate-limited') });
      expect(cachedSteps(imported)).toEqual(Object.fromEntries(COPY_STEPS.map((s) => [s, true])));
    });

    it('500 on every reservation: the export fails the build, unless ignore-error=true', async () => {
      mock.faults.add({ op: 'CreateCacheEntry', action: { type: 'status', status: 500 } });
      const failing = await buildFresh('export-500', {
        exportCache: gha('broken', ',mode=max'),
        allowFailure: true,
      });
      expect(failing.code).not.toBe(0);
      // go-actions-cache turns the Twirp error body into its `code`: "error: failed to solve: internal".
      expect(failing.stderr).toMatch(/failed to solve: internal/);
      // GO does not retry a 5xx (docs/protocol.md §3.5): one reservation per blob it tried, each answered 500.
      expect(twirp(failing.requests, 'CreateCacheEntry').every((r) => r.status === 500)).toBe(true);
      const ignored = await buildFresh('export-500-ignored', {
        exportCache: gha('broken', ',mode=max,ignore-error=true'),
      });
      expect(ignored.code).toBe(0);
      expect(await digestTree(ignored.output)).toEqual(await digestTree(first.output));
    });
  });
});

describe("BuildKit with GitHub's visibility delay (a committed entry shows to lookups only after 5 s)", () => {
  beforeAll(() => {
    mock.app.mock.policies.update({ visibilityDelayMs: 5000 });
  });
  afterAll(() => {
    mock.app.mock.policies.update({ visibilityDelayMs: 0 });
  });

  it('an import right after the export finds no cache; a re-export meanwhile; once the delay passes every layer is CACHED', async () => {
    const exported = await buildFresh('vis-export', { exportCache: gha('vis', ',mode=max') });
    expect(exported.code).toBe(0);
    const immediate = await buildFresh('vis-import-now', { importCache: gha('vis') });
    expect(cachedSteps(immediate)).toEqual(Object.fromEntries(COPY_STEPS.map((s) => [s, false])));
    const indexLookups = twirp(immediate.requests, 'GetCacheEntryDownloadURL').filter((r) =>
      r.key?.startsWith('index-vis-1-'),
    );
    expect(indexLookups.map((r) => r.match)).toEqual(['miss']);
    expect(twirp(immediate.requests, 'GetBlob')).toEqual([]);

    // The next job exports the same build before the delay has passed: BuildKit sees no blob of the
    // first export, reserves each again, gets 409 already_exists and carries on (the build passes).
    const reexport = await buildFresh('vis-reexport', {
      exportCache: gha('vis', ',mode=max'),
      allowFailure: true,
    });
    const creates = twirp(reexport.requests, 'CreateCacheEntry');
    console.log(
      `[visibility] re-export within the delay: exit ${reexport.code}, Creates ${JSON.stringify(creates.map((r) => [r.key, r.status]))}`,
    );
    expect(reexport.code).toBe(0);
    expect(creates.some((r) => r.status === 409)).toBe(true);

    mock.app.mock.clock.advance(5000);
    const later = await buildFresh('vis-import-later', { importCache: gha('vis') });
    expect(cachedSteps(later)).toEqual(Object.fromEntries(COPY_STEPS.map((s) => [s, true])));
    expect(await digestTree(later.output)).toEqual(await digestTree(exported.output));
  });
});
