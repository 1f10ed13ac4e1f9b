/**
 * The traffic features from the command line, with our own client (`gha-cache`) as the peer:
 * `--log-format pretty` lines with client, outcome and a miss's reason; `--traffic-log` surviving a restart;
 * `--report-on-exit`; `gha-cache-mock report` from a running mock and from a traffic log.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runGhaCache } from '../client/support/gha-cache-cli.js';
import { runCommand } from '../peers/support.js';
import { MOCK_CLI, type MockProcess, spawnMock } from '../support/cli.js';

let work: string;
let mock: MockProcess | undefined;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'gha-inspector-cli-'));
});
afterAll(async () => {
  await mock?.stop('SIGKILL');
  await rm(work, { recursive: true, force: true });
});

const pollFor = async (what: () => boolean, label: string, timeoutMs = 20_000) => {
  const end = Date.now() + timeoutMs;
  while (!what()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${label}`);
    await new Promise((r) => setTimeout(r, 50));
  }
};

describe('gha-cache-mock traffic from the CLI, with the gha-cache client', () => {
  const log = () => join(work, 'traffic.ndjson');
  const report = () => join(work, 'report.md');

  it('logs pretty lines with the client, the outcome and why a miss missed; writes the report on exit', async () => {
    mock = await spawnMock([
      '--storage',
      'memory',
      '--log-format',
      'pretty',
      '--traffic-log',
      log(),
      '--report-on-exit',
      report(),
    ]);
    expect(mock.stderr()).toContain(`web UI at ${mock.url}/_ui/`);
    const file = join(work, 'data.bin');
    await writeFile(file, Buffer.alloc(300_000, 7));
    const put = await runGhaCache(['put', 'tools-linux-v1', file], { env: mock.env });
    expect(put.code, put.stderr).toBe(0);
    const get = await runGhaCache(['get', 'tools-linux-v2', join(work, 'out.bin')], { env: mock.env });
    expect(get.code).not.toBe(0);
    await pollFor(() => /GetCacheEntryDownloadURL .* miss /.test(mock!.stderr()), 'the miss line');
    const lines = mock.stderr().split('\n');
    expect(lines.find((l) => l.includes('CreateCacheEntry'))).toMatch(
      /^\d\d:\d\d:\d\d\.\d{3} gha-cache +CreateCacheEntry +tools-linux-v1 +created +200/,
    );
    const miss = lines.find((l) => / miss /.test(l))!;
    expect(miss).toContain('tools-linux-v2');
    expect(miss).toContain('nearest: "tools-linux-v1"');
    expect(mock.stderr()).not.toMatch(/sig=[^R]/);
    expect(await mock.stop('SIGTERM')).toBe(0);
    mock = undefined;
    const md = await readFile(report(), 'utf8');
    expect(md).toContain('## Cache traffic (gha-cache-mock)');
    expect(md).toMatch(/\| gha-cache \| 1 \| 0 \| 1 \| 0% \|/);
    expect(md).toContain('| no-such-key | 1 |');
  });

  it('loads the traffic log back after a restart (ids continue) and reports from it or from the server', async () => {
    const before = (await readFile(log(), 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(before.map((e) => e.client)).toContain('gha-cache');
    expect(JSON.stringify(before)).not.toMatch(/sig=(?!REDACTED)|eyJ/);
    mock = await spawnMock(['--storage', 'memory', '--log-format', 'json', '--traffic-log', log()]);
    const { events } = (await (await fetch(`${mock.url}/_admin/traffic`)).json()) as {
      events: { id: number }[];
    };
    expect(events.map((e) => e.id)).toEqual(before.map((e) => e.id));
    // A JSON log line carries the same facts as fields.
    await runGhaCache(['get', 'absent', join(work, 'x')], { env: mock.env });
    await pollFor(() => mock!.stderr().includes('"missReason":"no-such-key"'), 'the JSON miss line');

    const fromServer = await runCommand(process.execPath, [MOCK_CLI, 'report', '--url', mock.url], {
      timeoutMs: 30_000,
    });
    expect(fromServer.code, fromServer.stderr).toBe(0);
    expect(fromServer.stdout).toContain('| no-such-key | 2 |');
    expect(fromServer.stdout).toMatch(/\| gha-cache \| 2 \| 0 \| 2 \| 0% \|/);
    const fromFile = await runCommand(process.execPath, [MOCK_CLI, 'report', '--traffic-log', log()], {
      timeoutMs: 30_000,
    });
    expect(fromFile.code, fromFile.stderr).toBe(0);
    expect(fromFile.stdout).toContain('| no-such-key | 2 |');
    const down = await runCommand(process.execPath, [MOCK_CLI, 'report', '--url', 'http://127.0.0.1:9'], {
      timeoutMs: 30_000,
    });
    expect(down.code).toBe(1);
    expect(down.stderr).toContain('cannot reach http://127.0.0.1:9');
  });
});
