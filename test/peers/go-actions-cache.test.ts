/**
 * The library inside BuildKit's `type=gha` cache, github.com/tonistiigi/go-actions-cache (version pinned in
 * test/peers/go-actions-cache/go.mod), runs its own `go test` against the mock with
 * ACTIONS_CACHE_API_FORCE_VERSION=v2 (docs/protocol.md §6.2, C-91).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestMock, type TestMock } from '../support/mock.js';
import type { InstalledPeers } from './install.mjs';
import { isolatedEnv, requirePeers, runCommand } from './support.js';

/** Tests that talk to the cache service: each must run and pass against the mock. */
const CACHE_SERVICE_TESTS = [
  'TestSaveLoad',
  'TestExistingKey',
  'TestChunkedSave',
  'TestPartialKeyOrder',
  'TestMutable',
  'TestMutableRace',
  'TestMutableCrash',
];
/** Tests that need no server at all (token parsing, encrypted token, Retry-After, a stub server). */
const OFFLINE_TESTS = [
  'TestTokenScopes',
  'TestEncryptedToken',
  'TestParseRetryAfter',
  'TestV2WriteErrorMessage',
];
/** Tests that are expected to skip, and why. */
const EXPECTED_SKIPS: Record<string, string> = {
  TestAllKeys:
    'needs the GitHub REST API (GITHUB_TOKEN + GITHUB_REPOSITORY, api.github.com) to list keys; the mock emulates only the cache service',
};

interface GoTestEvent {
  Action: string;
  Test?: string;
  Output?: string;
  Elapsed?: number;
}

let peers: Required<Pick<InstalledPeers, 'go-actions-cache'>>;
let mock: TestMock;

beforeAll(async () => {
  peers = await requirePeers(['go-actions-cache']);
  console.log(`[peers] testing go-actions-cache ${peers['go-actions-cache'].version}`);
  mock = await startTestMock();
});

afterAll(async () => {
  await mock?.dispose();
});

describe('go-actions-cache own test suite against the mock (C-91)', () => {
  it('passes every cache-service test with ACTIONS_CACHE_API_FORCE_VERSION=v2', async () => {
    // GHCACHE_*, GITHUB_* and ACTIONS_* from the outer environment are dropped: only the mock is reachable.
    const env = isolatedEnv({
      ACTIONS_RESULTS_URL: mock.env.ACTIONS_RESULTS_URL,
      ACTIONS_RUNTIME_TOKEN: mock.token,
      ACTIONS_CACHE_API_FORCE_VERSION: 'v2',
    });
    const result = await runCommand('go', ['test', '-count=1', '-json', '-timeout=4m', '.'], {
      cwd: peers['go-actions-cache'].srcDir,
      env,
      timeoutMs: 280_000,
    });
    const events: GoTestEvent[] = [];
    for (const line of result.stdout.split('\n')) {
      if (line.startsWith('{')) events.push(JSON.parse(line) as GoTestEvent);
    }
    const outcome = new Map<string, string>();
    const output = new Map<string, string>();
    for (const e of events) {
      if (!e.Test) continue;
      if (e.Output) output.set(e.Test, (output.get(e.Test) ?? '') + e.Output);
      if (e.Action === 'pass' || e.Action === 'fail' || e.Action === 'skip') outcome.set(e.Test, e.Action);
    }
    const topLevel = [...outcome].filter(([name]) => !name.includes('/'));
    for (const [name, action] of topLevel) {
      const why =
        action === 'skip'
          ? ` — skipped: ${EXPECTED_SKIPS[name] ?? 'UNEXPECTED'} (test said: ${(output.get(name) ?? '')
              .split('\n')
              .filter((l) => /\.go:\d+:/.test(l))
              .map((l) => l.trim())
              .join('; ')})`
          : '';
      console.log(`[go-actions-cache] ${action.toUpperCase()} ${name}${why}`);
    }
    const failed = topLevel.filter(([, a]) => a === 'fail').map(([n]) => n);
    const failures = failed.map((n) => `--- ${n}\n${output.get(n) ?? ''}`).join('\n');
    expect(failed, `go test failures:\n${failures}\n${result.stderr}`).toEqual([]);
    expect(result.code, `go test exited ${result.code ?? result.signal}:\n${result.stderr}`).toBe(0);
    const passed = topLevel.filter(([, a]) => a === 'pass').map(([n]) => n);
    expect(passed.sort()).toEqual([...CACHE_SERVICE_TESTS, ...OFFLINE_TESTS].sort());
    const skipped = topLevel.filter(([, a]) => a === 'skip').map(([n]) => n);
    expect(skipped.sort()).toEqual(Object.keys(EXPECTED_SKIPS).sort());
    // The suite really used the mock, over JSON Twirp only (§6.2).
    const twirpCalls = mock.requests().filter((r) => r.url?.includes('/twirp/'));
    expect(twirpCalls.length).toBeGreaterThan(20);
    expect(new Set(twirpCalls.map((r) => r.encoding))).toEqual(new Set(['json']));
    // TestExistingKey: the duplicate reservation was a 409 (already_exists).
    expect(
      twirpCalls.some(
        (r) => r.op === 'CreateCacheEntry' && r.key === 'go-actions-cache-key1' && r.status === 409,
      ),
    ).toBe(true);
  });
});
