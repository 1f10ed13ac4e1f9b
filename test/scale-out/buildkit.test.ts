/**
 * The real BuildKit exports its `type=gha` cache through one mock instance and imports it through
 * another, both on one PostgreSQL 15 and one Azurite: the layers go straight to Azurite.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type MockServer, startMockServer } from '@gha-cache/mock-server';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type Azurite, startAzurite } from '../client/support/azurite.js';
import type { InstalledPeers } from '../peers/install.mjs';
import { buildInFreshDaemon, requirePeers } from '../peers/support.js';
import { azuriteConnectionString } from '../support/azure.js';
import { digestTree, writeRandomFile, writeTree } from '../support/files.js';
import { type Postgres, startPostgres } from '../support/postgres.js';

const STEPS = ['[1/3] COPY a.txt /a.txt', '[2/3] COPY big.bin /big.bin', '[3/3] COPY c.txt /c.txt'];

let peers: Required<Pick<InstalledPeers, 'buildkit' | 'runc'>>;
let postgres: Postgres;
let azurite: Azurite;
let work: string;
let ctx: string;
const mocks: MockServer[] = [];

beforeAll(async () => {
  peers = await requirePeers(['runc', 'buildkit']);
  [postgres, azurite] = await Promise.all([startPostgres(), startAzurite()]);
  const database = await postgres.createDatabase('buildkit_fleet');
  const options = {
    database,
    blobStore: 'azure' as const,
    azure: { connectionString: azuriteConnectionString(azurite), container: 'buildkit' },
    tokenSecret: Buffer.from('buildkit-fleet-secret'),
  };
  mocks.push(await startMockServer(options));
  mocks.push(await startMockServer(options));
  work = await mkdtemp(join(tmpdir(), 'gha-fleet-buildkit-'));
  ctx = join(work, 'ctx');
  await writeTree(ctx, {
    Dockerfile: 'FROM scratch\nCOPY a.txt /a.txt\nCOPY big.bin /big.bin\nCOPY c.txt /c.txt\n',
    'a.txt': 'alpha\n',
    'c.txt': 'charlie\n',
  });
  await writeRandomFile(join(ctx, 'big.bin'), 3 * 1024 * 1024 + 7);
}, 600_000);

afterAll(async () => {
  for (const m of mocks) await m.close();
  await azurite?.close();
  await postgres?.close();
  if (work) await rm(work, { recursive: true, force: true });
});

async function build(name: string, cache: string[]): Promise<{ cached: boolean[]; output: string }> {
  const { result, vertices, output } = await buildInFreshDaemon({
    peers,
    dir: join(work, name),
    context: ctx,
    args: cache,
  });
  if (result.code !== 0) throw new Error(`buildctl ${name} failed:\n${result.stderr.slice(-6000)}`);
  return { cached: STEPS.map((s) => vertices.get(s)?.cached ?? false), output };
}

const gha = (m: MockServer) => `type=gha,url_v2=${m.url}/,token=${m.token},scope=fleet`;

it('BuildKit exports through one instance and imports through another; the layers live in Azurite', async () => {
  const exported = await build('export', ['--export-cache', `${gha(mocks[0]!)},mode=max`]);
  expect(exported.cached).toEqual([false, false, false]);
  // Each Finalize sealed its upload with a lease.
  let sealed = 0;
  for await (const b of azurite.service.getContainerClient('buildkit').listBlobsFlat()) {
    if (b.properties.leaseState === 'leased') sealed++;
  }
  expect(sealed).toBeGreaterThanOrEqual(4); // 3 layers + index
  const imported = await build('import', ['--import-cache', gha(mocks[1]!)]);
  expect(imported.cached).toEqual([true, true, true]);
  expect(await digestTree(imported.output)).toEqual(await digestTree(exported.output));
});
