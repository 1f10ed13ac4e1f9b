/**
 * Reads BuildKit's `type=gha` cache the way an import would: each `index-…` entry holds a CacheConfig
 * (plain JSON: `layers[]` with blob digests and annotations, `records[]`), whose layers refer to
 * `buildkit-blob-1-<digest>` entries. Shows what each index uses, which layer blobs are missing, and
 * which blob entries no index uses. Reads the store through its public methods only.
 */
import type { CacheEntry, EntryFilter } from '../storage/types.js';

export interface BuildkitStore {
  listEntries(filter?: EntryFilter): CacheEntry[] | Promise<CacheEntry[]>;
  openBlob(blobId: string): Promise<{ stream: AsyncIterable<unknown> }>;
}

export interface IndexLayer {
  readonly blob: string;
  readonly mediaType: string | null;
  readonly sizeBytes: number | null;
  readonly diffId: string | null;
  readonly createdAt: string | null;
  /** The `buildkit-blob-1-<blob>` entry in the index's repository and scope (or another scope). */
  readonly entryId: number | null;
  readonly entryScope: string | null;
  readonly present: boolean;
}

export interface IndexView {
  readonly entryId: number;
  readonly repositoryId: string;
  readonly scope: string;
  readonly key: string;
  readonly sizeBytes: number;
  readonly createdAt: string;
  /** Distinct layer blobs, in index order. */
  readonly layers: readonly IndexLayer[];
  readonly records: number;
  /** Records that carry layers (the others carry cache keys only). */
  readonly recordsWithLayers: number;
  readonly totalLayerBytes: number;
  readonly missingLayers: number;
  /** Why the content could not be read, if it could not. */
  readonly error?: string;
}

export interface BlobEntryView {
  readonly entryId: number;
  readonly repositoryId: string;
  readonly scope: string;
  readonly key: string;
  readonly sizeBytes: number;
  /** Entry ids of the indexes that use it. */
  readonly usedBy: readonly number[];
}

export interface BuildkitView {
  readonly indexes: readonly IndexView[];
  readonly blobs: readonly BlobEntryView[];
  /** Blob entries no index uses. */
  readonly unused: number;
}

export const BLOB_KEY_PREFIX = 'buildkit-blob-1-';
/** An index bigger than this is not read (BuildKit's are kilobytes to a few MiB). */
const MAX_INDEX_BYTES = 64 * 1024 * 1024;

const isIndexKey = (key: string) => key.startsWith('index-') && !key.endsWith('-sig');

async function readAll(stream: AsyncIterable<unknown>, max: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of stream) {
    const b = chunk as Buffer;
    total += b.length;
    if (total > max) throw new Error(`index larger than ${max} bytes`);
    chunks.push(b);
  }
  return Buffer.concat(chunks, total);
}

interface CacheConfigLayer {
  blob?: unknown;
  annotations?: { mediaType?: unknown; diffID?: unknown; size?: unknown; createdAt?: unknown };
}
interface CacheConfig {
  layers?: CacheConfigLayer[];
  records?: { layers?: unknown[]; chains?: unknown[] }[];
}

const strOrNull = (v: unknown) => (typeof v === 'string' ? v : null);

export async function inspectBuildkit(store: BuildkitStore, repositoryId?: string): Promise<BuildkitView> {
  const entries = (await store.listEntries({
    state: 'committed',
    ...(repositoryId !== undefined ? { repositoryId } : {}),
  })) as CacheEntry[];
  const blobEntries = entries.filter((e) => e.key.startsWith(BLOB_KEY_PREFIX));
  const blobByKey = new Map<string, CacheEntry[]>();
  for (const e of blobEntries) {
    const k = `${e.repositoryId}\0${e.key}`;
    const list = blobByKey.get(k);
    if (list) list.push(e);
    else blobByKey.set(k, [e]);
  }
  const usedBy = new Map<number, number[]>();
  const indexes: IndexView[] = [];
  for (const index of entries.filter((e) => isIndexKey(e.key))) {
    const base = {
      entryId: index.id,
      repositoryId: index.repositoryId,
      scope: index.scope,
      key: index.key,
      sizeBytes: index.sizeBytes,
      createdAt: new Date(index.createdAt).toISOString(),
    };
    let config: CacheConfig;
    try {
      const { stream } = await store.openBlob(index.blobId);
      config = JSON.parse((await readAll(stream, MAX_INDEX_BYTES)).toString('utf8')) as CacheConfig;
      if (typeof config !== 'object' || config === null) throw new Error('not a JSON object');
    } catch (err) {
      indexes.push({
        ...base,
        layers: [],
        records: 0,
        recordsWithLayers: 0,
        totalLayerBytes: 0,
        missingLayers: 0,
        error: `not a BuildKit cache config: ${(err as Error).message}`,
      });
      continue;
    }
    const seen = new Set<string>();
    const layers: IndexLayer[] = [];
    for (const layer of Array.isArray(config.layers) ? config.layers : []) {
      const blob = strOrNull(layer?.blob);
      if (blob === null || seen.has(blob)) continue;
      seen.add(blob);
      const candidates = blobByKey.get(`${index.repositoryId}\0${BLOB_KEY_PREFIX}${blob}`) ?? [];
      const entry = candidates.find((c) => c.scope === index.scope) ?? candidates[0];
      if (entry) {
        const users = usedBy.get(entry.id);
        if (users) users.push(index.id);
        else usedBy.set(entry.id, [index.id]);
      }
      const size = layer.annotations?.size;
      layers.push({
        blob,
        mediaType: strOrNull(layer.annotations?.mediaType),
        sizeBytes: typeof size === 'number' ? size : null,
        diffId: strOrNull(layer.annotations?.diffID),
        createdAt: strOrNull(layer.annotations?.createdAt),
        entryId: entry?.id ?? null,
        entryScope: entry?.scope ?? null,
        present: entry !== undefined,
      });
    }
    const records = Array.isArray(config.records) ? config.records : [];
    indexes.push({
      ...base,
      layers,
      records: records.length,
      recordsWithLayers: records.filter(
        (r) =>
          (Array.isArray(r?.layers) && r.layers.length > 0) ||
          (Array.isArray(r?.chains) && r.chains.length > 0),
      ).length,
      totalLayerBytes: layers.reduce((n, l) => n + (l.sizeBytes ?? 0), 0),
      missingLayers: layers.filter((l) => !l.present).length,
    });
  }
  const blobs: BlobEntryView[] = blobEntries.map((e) => ({
    entryId: e.id,
    repositoryId: e.repositoryId,
    scope: e.scope,
    key: e.key,
    sizeBytes: e.sizeBytes,
    usedBy: usedBy.get(e.id) ?? [],
  }));
  return { indexes, blobs, unused: blobs.filter((b) => b.usedBy.length === 0).length };
}
