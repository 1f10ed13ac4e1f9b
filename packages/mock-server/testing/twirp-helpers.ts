import { Readable } from 'node:stream';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { buildApp } from '../src/app.js';
import type { TokenScope } from '../src/auth/tokens.js';
import { createManualClock, type ManualClock } from '../src/clock.js';
import { SERVICE_PATH } from '../src/plugins/twirp.js';
import { createMemoryStorage } from '../src/storage/memory/index.js';

export const VERSION = 'c242501c19ada3dcced7a83b074ccb8e79f816602d4125493924624b38591de2';
export const MAIN_RW: TokenScope[] = [{ scope: 'refs/heads/main', permission: 3 }];

export interface TestApp {
  app: FastifyInstance;
  clock: ManualClock;
  token: (scopes?: TokenScope[], repositoryId?: string) => string;
  rpc: (method: string, body: unknown, token?: string) => Promise<LightMyRequestResponse>;
  /** Create → upload (through storage) → Finalize; returns the entry id. */
  save: (key: string, data?: Buffer | string, token?: string, version?: string) => Promise<string>;
  get: (
    key: string,
    restoreKeys?: string[],
    token?: string,
    version?: string,
  ) => Promise<Record<string, unknown>>;
}

export async function createTestApp(options: Parameters<typeof buildApp>[0] = {}): Promise<TestApp> {
  const clock = createManualClock(Date.UTC(2026, 10, 26, 12));
  const app = await buildApp({ storage: createMemoryStorage(), clock, ...options });
  const token = (scopes: TokenScope[] = MAIN_RW, repositoryId?: string) =>
    app.mock.tokens.mint({ scopes, ...(repositoryId ? { repositoryId } : {}) }); // real time, as tokens are
  const defaultToken = token();
  const rpc = (method: string, body: unknown, t = defaultToken) =>
    app.inject({
      method: 'POST',
      url: SERVICE_PATH + method,
      headers: { 'content-type': 'application/json', authorization: `Bearer ${t}` },
      payload: typeof body === 'string' ? body : JSON.stringify(body),
    });
  const save = async (key: string, data: Buffer | string = 'hello', t = defaultToken, version = VERSION) => {
    const created = await rpc('CreateCacheEntry', { key, version }, t);
    if (created.statusCode !== 200 || !created.json().ok) throw new Error(`create ${key}: ${created.body}`);
    const url = new URL(created.json().signed_upload_url);
    const bytes = Buffer.from(data);
    const blobId = url.pathname.split('/').pop()!;
    await app.mock.storage.blobs.putBlob(blobId, Readable.from([bytes]), bytes.length, clock.now());
    const fin = await rpc('FinalizeCacheEntryUpload', { key, version, size_bytes: String(bytes.length) }, t);
    if (fin.statusCode !== 200 || !fin.json().ok) throw new Error(`finalize ${key}: ${fin.body}`);
    clock.advance(1000);
    return fin.json().entry_id as string;
  };
  const get = async (key: string, restoreKeys: string[] = [], t = defaultToken, version = VERSION) => {
    const res = await rpc('GetCacheEntryDownloadURL', { key, restore_keys: restoreKeys, version }, t);
    if (res.statusCode !== 200) throw new Error(`get ${key}: ${res.statusCode} ${res.body}`);
    return res.json();
  };
  return { app, clock, token, rpc, save, get };
}
