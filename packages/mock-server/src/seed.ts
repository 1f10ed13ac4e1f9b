/**
 * Seeding: preloads committed entries (metadata + bytes) so a test starts from a warm cache. Used by
 * `app.mock.seed()`, `MockServer.seed()`, `POST /_admin/entries` and `gha-cache-mock serve --seed`.
 */
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import type { Clock } from './clock.js';
import { TwirpError } from './errors.js';
import type { RepositoryRegistry } from './repositories.js';
import type { CacheEntry, CacheStorage } from './storage/types.js';
import { checkKey, checkVersion } from './twirp/cache-service.js';

/** What to do when the identity (repository, scope, key, version) already exists. */
export type SeedConflict = 'error' | 'skip' | 'replace';

export interface SeedInput {
  /** `owner/repo` of a registered repository. Default: the default repository. */
  readonly repository?: string;
  /** Repository id (instead of `repository`). */
  readonly repositoryId?: string;
  /** Git ref the entry belongs to. Default `refs/heads/main`. */
  readonly scope?: string;
  readonly key: string;
  /** The client's version hash (opaque; lookups must send the same). */
  readonly version: string;
  /**
   * The bytes: a buffer or string, or a stream of exactly `sizeBytes` bytes. A refused seed (conflict,
   * validation) leaves a stream unread: the caller owns it (an HTTP request body is drained by the server).
   */
  readonly content: Uint8Array | string | Readable;
  /** Required when `content` is a stream. */
  readonly sizeBytes?: number;
  /** Default `'error'` (throws `already_exists`). */
  readonly onConflict?: SeedConflict;
}

export interface SeedResult {
  readonly entry: CacheEntry;
  /** False when `onConflict: 'skip'` kept an existing entry. */
  readonly created: boolean;
}

export interface SeederDeps {
  readonly storage: CacheStorage;
  readonly clock: Clock;
  readonly repositories: RepositoryRegistry;
}

export type Seeder = (input: SeedInput) => Promise<SeedResult>;

const invalid = (msg: string, argument: string) => new TwirpError('invalid_argument', msg, { argument });

/** Seeds one committed entry; errors are Twirp-shaped `{code,msg}` (`invalid_argument`, `not_found`, `already_exists`). */
export function createSeeder(deps: SeederDeps): Seeder {
  const { storage, clock, repositories } = deps;
  return async (input) => {
    const { key, version, scope = 'refs/heads/main' } = input;
    if (typeof key !== 'string') throw invalid('key must be a string', 'key');
    if (typeof version !== 'string') throw invalid('version must be a string', 'version');
    checkKey(key);
    checkVersion(version);
    if (typeof scope !== 'string' || scope === '') throw invalid('scope must be a non-empty ref', 'scope');
    let repositoryId = input.repositoryId ?? repositories.default.id;
    if (input.repository !== undefined) {
      const repo = repositories.byName(input.repository);
      if (!repo) throw new TwirpError('not_found', `unknown repository "${input.repository}"`);
      repositoryId = repo.id;
    }
    if (!/^\d+$/.test(repositoryId)) throw invalid('repositoryId must be a decimal string', 'repositoryId');
    const { content } = input;
    const body =
      content instanceof Readable ? content : Readable.from([Buffer.from(content as Uint8Array | string)]);
    const length =
      content instanceof Readable
        ? input.sizeBytes
        : typeof content === 'string'
          ? Buffer.byteLength(content)
          : content.byteLength;
    if (length === undefined || !Number.isSafeInteger(length) || length < 0) {
      throw invalid('sizeBytes (a non-negative integer) is required with a stream', 'sizeBytes');
    }

    const identity = { repositoryId, scope, key, version };
    const now = clock.now();
    const existing = await storage.metadata.findEntry(identity);
    if (existing) {
      const onConflict = input.onConflict ?? 'error';
      if (onConflict === 'skip' && existing.state === 'committed') {
        return { entry: existing, created: false };
      }
      if (onConflict === 'error') {
        throw new TwirpError(
          'already_exists',
          `an entry with this repository, scope, key and version exists (id ${existing.id})`,
        );
      }
      await storage.deleteEntry(existing.id, now);
    }
    const reserved = await storage.metadata.reserveEntry(identity, now);
    if (!reserved) {
      throw new TwirpError('already_exists', 'an entry with this repository, scope, key and version exists');
    }
    try {
      await storage.blobs.putBlob(reserved.blobId, body, length, now);
      if (storage.blobs.direct) await storage.blobs.direct.seal(reserved.blobId, length);
      return { entry: await storage.metadata.commitEntry(reserved.id, length, clock.now()), created: true };
    } catch (err) {
      await storage.deleteEntry(reserved.id, clock.now());
      if ((err as { code?: string }).code === 'IncompleteBody') {
        throw invalid(`the content is not ${length} bytes long`, 'sizeBytes');
      }
      throw err;
    }
  };
}

/** One entry of a seed manifest; `file` is relative to the manifest's directory. */
export interface SeedManifestEntry {
  readonly repository?: string;
  readonly repositoryId?: string;
  readonly scope?: string;
  readonly key: string;
  readonly version: string;
  readonly file: string;
}

/**
 * Reads a seed manifest: a JSON file (or a directory holding `manifest.json`) with
 * `{"entries":[{"key","version","file","scope"?,"repository"?|"repositoryId"?}]}` (or just the array).
 * Returns seed inputs whose content streams from the files (opened lazily, one at a time).
 */
export async function loadSeedManifest(path: string): Promise<SeedInput[]> {
  const file = (await stat(path)).isDirectory() ? join(path, 'manifest.json') : path;
  const base = dirname(resolve(file));
  const json: unknown = JSON.parse(await readFile(file, 'utf8'));
  const list = Array.isArray(json) ? json : (json as { entries?: unknown } | null)?.entries;
  if (!Array.isArray(list)) throw new TypeError(`${file}: expected {"entries":[…]} or an array`);
  return Promise.all(
    list.map(async (item: unknown, i) => {
      const e = (item ?? {}) as Partial<SeedManifestEntry>;
      if (typeof e.file !== 'string' || e.file === '') {
        throw new TypeError(`${file}: entries[${i}].file must be a path`);
      }
      const contentPath = resolve(base, e.file);
      const { size } = await stat(contentPath);
      return {
        ...(e.repository !== undefined ? { repository: e.repository } : {}),
        ...(e.repositoryId !== undefined ? { repositoryId: String(e.repositoryId) } : {}),
        ...(e.scope !== undefined ? { scope: e.scope } : {}),
        key: e.key as string,
        version: e.version as string,
        content: Readable.from(lazyFile(contentPath)),
        sizeBytes: size,
      };
    }),
  );
}

/** Opens the file only when the stream is first read (a manifest may name many files). */
async function* lazyFile(path: string): AsyncGenerator<Buffer> {
  for await (const chunk of createReadStream(path)) yield chunk as Buffer;
}
