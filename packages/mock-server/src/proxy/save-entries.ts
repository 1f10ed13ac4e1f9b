/**
 * `--save-entries DIR`: every entry uploaded or downloaded through the proxy is also written to DIR as a
 * seed (`manifest.json` + one file per entry) that `gha-cache-mock serve --seed DIR` loads. Uploads are
 * kept from their Put Blob, or their Put Blocks in the order the Put Block List names them, and land in
 * the manifest when the Finalize succeeds; downloads land once every byte of the blob went through
 * (whole, or in ranges). Saving is best effort: it never changes or fails what the client gets.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { type FileHandle, mkdir, open, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { SeedManifestEntry } from '../seed.js';
import type { BlobTarget } from './blob-urls.js';

export interface ChunkSink {
  write(chunk: Buffer): Promise<void>;
  /** The transfer ended (`ok`) or broke. */
  end(ok: boolean): Promise<void>;
}

export interface EntrySaver {
  readonly dir: string;
  /** Where an upload's body goes (Put Blob, Put Block, Put Block List), or undefined to skip it. */
  uploadSink(target: BlobTarget, op: string, blockId: string | undefined): Promise<ChunkSink | undefined>;
  /** The upstream answered an upload (`ok` = 2xx, body complete). */
  uploadDone(target: BlobTarget, op: string, blockId: string | undefined, ok: boolean): Promise<void>;
  /** Where a download's bytes go (`start` of the range, `total` size of the blob), or undefined. */
  downloadSink(target: BlobTarget, range: { start: number; total: number }): Promise<ChunkSink | undefined>;
  /** A FinalizeCacheEntryUpload succeeded: the upload of this key and version becomes an entry. */
  finalized(key: string, version: string, scope: string | undefined): void;
  /** Entries in the manifest. */
  count(): number;
  /** Waits for the work under way. */
  close(): Promise<void>;
}

interface Upload {
  readonly dir: string;
  readonly target: BlobTarget;
  blobReady: boolean;
  readonly blocks: Map<string, string>;
  blockList?: string[];
  xml?: Buffer[] | undefined;
}

interface Download {
  readonly path: string;
  readonly total: number;
  handle: FileHandle | undefined;
  covered: [number, number][];
  done: boolean;
}

const hash = (s: string) => createHash('sha256').update(s).digest('hex').slice(0, 32);
const identityOf = (scope: string | undefined, key: string, version: string | undefined) =>
  `${scope ?? ''}\0${key}\0${version ?? ''}`;

/** Adds [a, b) to sorted disjoint intervals; returns the bytes covered. */
function cover(intervals: [number, number][], a: number, b: number): number {
  if (b > a) intervals.push([a, b]);
  intervals.sort((x, y) => x[0] - y[0]);
  const merged: [number, number][] = [];
  for (const [s, e] of intervals) {
    const last = merged.at(-1);
    if (last && s <= last[1]) last[1] = Math.max(last[1], e);
    else merged.push([s, e]);
  }
  intervals.splice(0, intervals.length, ...merged);
  return merged.reduce((n, [s, e]) => n + (e - s), 0);
}

/** Block ids of a Put Block List body, in order (`<Latest>`, `<Committed>`, `<Uncommitted>`). */
export function blockListIds(xml: string): string[] {
  return [...xml.matchAll(/<(Latest|Committed|Uncommitted)>\s*([^<]*?)\s*<\/\1>/g)].map((m) => m[2]!);
}

export async function createEntrySaver(dir: string): Promise<EntrySaver> {
  const partial = join(dir, '.partial');
  const files = join(dir, 'files');
  await mkdir(partial, { recursive: true });
  await mkdir(files, { recursive: true });
  const manifestFile = join(dir, 'manifest.json');
  const entries = new Map<string, SeedManifestEntry>();
  try {
    const json = JSON.parse(await readFile(manifestFile, 'utf8')) as { entries?: SeedManifestEntry[] };
    for (const e of json.entries ?? []) entries.set(identityOf(e.scope, e.key, e.version), e);
  } catch {
    // No manifest yet (or an unreadable one, which the next write replaces).
  }
  const uploads = new Map<string, Upload>();
  const downloads = new Map<string, Download>();
  let queue: Promise<unknown> = Promise.resolve();
  const serially = (job: () => Promise<void>) => {
    const next = queue.then(job).catch(() => undefined);
    queue = next;
    return next;
  };

  const writeManifest = async () => {
    const body = `${JSON.stringify({ entries: [...entries.values()] }, null, 2)}\n`;
    const tmp = `${manifestFile}.tmp`;
    await writeFile(tmp, body);
    await rename(tmp, manifestFile);
  };

  /** Moves a complete blob file into `files/` and names it in the manifest. */
  const commit = async (from: string, target: BlobTarget) => {
    const identity = identityOf(target.scope, target.key, target.version);
    if (target.version === undefined) return;
    const name = `${hash(identity)}.bin`;
    await rename(from, join(files, name));
    entries.set(identity, {
      ...(target.scope !== undefined ? { scope: target.scope } : {}),
      key: target.key,
      version: target.version,
      file: `files/${name}`,
    });
    await writeManifest();
  };

  const uploadOf = async (target: BlobTarget): Promise<Upload> => {
    let u = uploads.get(target.id);
    if (!u) {
      u = { dir: join(partial, `up-${hash(target.id)}`), target, blobReady: false, blocks: new Map() };
      uploads.set(target.id, u);
      await mkdir(join(u.dir, 'blocks'), { recursive: true });
    }
    return u;
  };

  const fileSink = async (path: string): Promise<ChunkSink> => {
    const out = createWriteStream(path);
    await new Promise<void>((resolve, reject) => out.once('open', () => resolve()).once('error', reject));
    return {
      write: (chunk) =>
        new Promise<void>((resolve, reject) => out.write(chunk, (err) => (err ? reject(err) : resolve()))),
      end: () => new Promise<void>((resolve) => out.end(() => resolve())),
    };
  };

  const pendingSinks = new Map<string, ChunkSink>();
  const sinkKey = (target: BlobTarget, op: string, blockId: string | undefined) =>
    `${target.id}\0${op}\0${blockId ?? ''}`;

  return {
    dir,
    async uploadSink(target, op, blockId) {
      if (target.kind !== 'upload') return undefined;
      const u = await uploadOf(target);
      let sink: ChunkSink;
      if (op === 'PutBlockList') {
        u.xml = [];
        const xml = u.xml;
        let size = 0;
        sink = {
          write: async (chunk) => {
            size += chunk.length;
            if (size <= 4 * 1024 * 1024) xml.push(chunk);
          },
          end: async () => undefined,
        };
      } else if (op === 'PutBlob') sink = await fileSink(join(u.dir, 'blob'));
      else if (op === 'PutBlock' && blockId !== undefined)
        sink = await fileSink(join(u.dir, 'blocks', hash(blockId)));
      else return undefined;
      pendingSinks.set(sinkKey(target, op, blockId), sink);
      return sink;
    },
    async uploadDone(target, op, blockId, ok) {
      const k = sinkKey(target, op, blockId);
      const sink = pendingSinks.get(k);
      if (!sink) return;
      pendingSinks.delete(k);
      await sink.end(ok).catch(() => undefined);
      const u = uploads.get(target.id);
      if (!u || !ok) return;
      if (op === 'PutBlob') u.blobReady = true;
      else if (op === 'PutBlock' && blockId !== undefined)
        u.blocks.set(blockId, join(u.dir, 'blocks', hash(blockId)));
      else if (op === 'PutBlockList' && u.xml) {
        const ids = blockListIds(Buffer.concat(u.xml).toString('utf8'));
        u.xml = undefined;
        if (ids.some((id) => !u.blocks.has(id))) return;
        await serially(async () => {
          const out = createWriteStream(join(u.dir, 'blob'));
          await pipeline(async function* () {
            for (const id of ids) yield* createReadStream(u.blocks.get(id)!);
          }, out);
          u.blobReady = true;
        });
      }
    },
    async downloadSink(target, range) {
      if (target.kind !== 'download' || target.version === undefined) return undefined;
      const identity = identityOf(target.scope, target.key, target.version);
      if (entries.has(identity) || !Number.isSafeInteger(range.total) || range.total < 0) return undefined;
      let d = downloads.get(identity);
      if (d?.done) return undefined;
      if (!d || d.total !== range.total) {
        d = {
          path: join(partial, `down-${hash(identity)}`),
          total: range.total,
          handle: undefined,
          covered: [],
          done: false,
        };
        downloads.set(identity, d);
        d.handle = await open(d.path, 'w+');
      }
      const dl = d;
      let position = range.start;
      const start = range.start;
      return {
        write: async (chunk) => {
          if (!dl.handle) return;
          await dl.handle.write(chunk, 0, chunk.length, position);
          position += chunk.length;
        },
        end: async () => {
          const covered = cover(dl.covered, start, position);
          if (covered < dl.total || dl.done) return;
          dl.done = true;
          await serially(async () => {
            await dl.handle?.close();
            dl.handle = undefined;
            await commit(dl.path, target);
            downloads.delete(identity);
          });
        },
      };
    },
    finalized(key, version, scope) {
      const found = [...uploads.values()].findLast(
        (u) =>
          u.blobReady && u.target.key === key && u.target.version === version && u.target.scope === scope,
      );
      if (!found) return;
      uploads.delete(found.target.id);
      void serially(async () => {
        await commit(join(found.dir, 'blob'), found.target);
        await rm(found.dir, { recursive: true, force: true });
      });
    },
    count: () => entries.size,
    async close() {
      await queue;
      for (const d of downloads.values()) await d.handle?.close().catch(() => undefined);
      await rm(partial, { recursive: true, force: true });
    },
  };
}
