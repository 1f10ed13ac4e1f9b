/**
 * Blob requests to a proxy URL: streamed to the original signed URL and back, never buffered whole, every
 * end-to-end header (`x-ms-*`, `Range`, `Content-Range`, `ETag`, `Content-MD5`, …) passed through both ways.
 * A broken stream on either side breaks the other: the client sees the drop the upstream caused.
 */
import { Transform, type TransformCallback } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { BLOB_PREFIX, type BlobTarget, upstreamUrlFor } from './blob-urls.js';
import type { ProxyContext } from './context.js';
import { endToEndHeaders, headerValue, UpstreamError } from './forward.js';
import { type Pump, pump } from './pump.js';
import { type Exchange, recordExchange } from './record.js';
import { sendAzureXml } from './respond.js';
import type { ChunkSink } from './save-entries.js';

/** The Azure operation a request is, as the mock names them. */
export function blobOp(method: string, query: URLSearchParams): string {
  const comp = (query.get('comp') ?? '').toLowerCase();
  if (method === 'PUT')
    return comp === 'block' ? 'PutBlock' : comp === 'blocklist' ? 'PutBlockList' : 'PutBlob';
  if (method === 'GET') return comp === 'blocklist' ? 'GetBlockList' : 'GetBlob';
  if (method === 'HEAD') return 'GetBlobProperties';
  if (method === 'DELETE') return 'DeleteBlob';
  return `Blob ${method}`;
}

/** Counts the bytes going through and hands each chunk to an optional sink (which may slow it down). */
class Tap extends Transform {
  bytes = 0;
  constructor(private readonly sink: ChunkSink | undefined) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.bytes += chunk.length;
    if (!this.sink) {
      done(null, chunk);
      return;
    }
    this.sink.write(chunk).then(
      () => done(null, chunk),
      () => {
        // Saving is best effort: a full disk must not break the client's transfer.
        done(null, chunk);
      },
    );
  }
}

/** `/_blob/<id>/<path>` → id and path. */
function splitPath(url: string): { id: string; path: string; search: string } | undefined {
  const q = url.indexOf('?');
  const pathname = q < 0 ? url : url.slice(0, q);
  const search = q < 0 ? '' : url.slice(q);
  const rest = pathname.slice(BLOB_PREFIX.length);
  const slash = rest.indexOf('/');
  if (slash <= 0) return undefined;
  return { id: rest.slice(0, slash), path: rest.slice(slash), search };
}

const samePath = (a: string, b: string) => {
  try {
    return decodeURIComponent(a) === decodeURIComponent(b);
  } catch {
    return false;
  }
};

function contentRange(value: string | undefined): { start: number; total: number } | undefined {
  const m = /^bytes (\d+)-\d+\/(\d+)$/.exec(value ?? '');
  return m ? { start: Number(m[1]), total: Number(m[2]) } : undefined;
}

export async function forwardBlob(
  ctx: ProxyContext,
  request: FastifyRequest,
  reply: FastifyReply,
): Promise<void> {
  const startedAt = performance.now();
  reply.hijack();
  const res = reply.raw;
  const parts = splitPath(request.url);
  const query = new URLSearchParams(parts?.search ?? '');
  const op = blobOp(request.method, query);
  const target: BlobTarget | undefined = parts ? ctx.registry.resolve(parts.id) : undefined;
  if (!parts || !target || !samePath(parts.path, target.original.pathname)) {
    // Unknown, expired or pointed at another blob: refused here, nothing goes upstream.
    request.raw.resume();
    sendAzureXml(
      res,
      403,
      'AuthenticationFailed',
      'this proxy URL is unknown or has expired with the signed URL it stands for',
    );
    recordExchange(ctx.journal, ctx.origin, request, {
      op,
      surface: 'blob',
      startedAt,
      status: 403,
      outcome: 'error',
      reason: 'unknown or expired proxy URL',
      errorCode: 'AuthenticationFailed',
    });
    return;
  }
  const base: Omit<Exchange, 'status' | 'outcome'> = {
    op,
    surface: 'blob',
    startedAt,
    key: target.key,
    ...(target.version !== undefined ? { version: target.version } : {}),
    ...(target.scope !== undefined ? { scope: target.scope } : {}),
    ...(target.repositoryId !== undefined ? { repositoryId: target.repositoryId } : {}),
  };
  const abort = new AbortController();
  res.on('close', () => {
    if (!res.writableFinished) abort.abort();
  });
  const hasBody = request.method !== 'GET' && request.method !== 'HEAD' && request.method !== 'DELETE';
  const uploadSink = hasBody
    ? await ctx.saver?.uploadSink(target, op, query.get('blockid') ?? undefined)
    : undefined;
  // Without a sink the body goes straight through (one stage less per chunk), its bytes counted by the pump.
  const upload = hasBody ? (uploadSink ? new Tap(uploadSink) : request.raw) : undefined;
  let uploaded: Pump | undefined;
  if (upload instanceof Tap) {
    request.raw.pipe(upload);
    request.raw.on('error', (err) => upload.destroy(err));
    request.raw.on('close', () => {
      if (!request.raw.complete) upload.destroy(new Error('client aborted the upload'));
    });
  }
  let upstreamRes: Awaited<ReturnType<ProxyContext['upstream']['send']>>;
  try {
    upstreamRes = await ctx.upstream.send(
      upstreamUrlFor(target, parts.search),
      request.method,
      endToEndHeaders(request.raw.rawHeaders),
      upload,
      abort.signal,
      (p) => {
        uploaded = p;
      },
    );
  } catch (err) {
    void ctx.saver?.uploadDone(target, op, query.get('blockid') ?? undefined, false);
    if (err instanceof UpstreamError && err.phase === 'connect') {
      sendAzureXml(
        res,
        502,
        'ProxyUpstreamUnreachable',
        `the blob service could not be reached (${err.causeCode})`,
      );
      recordExchange(ctx.journal, ctx.origin, request, {
        ...base,
        status: 502,
        outcome: 'error',
        reason: `upstream unreachable (${err.causeCode})`,
        errorCode: 'upstream_unreachable',
      });
      return;
    }
    res.destroy();
    recordExchange(ctx.journal, ctx.origin, request, {
      ...base,
      status: 0,
      outcome: 'error',
      reason: `connection dropped${err instanceof UpstreamError ? ` (${err.causeCode})` : ''}`,
      errorCode: 'connection_dropped',
    });
    return;
  }
  const status = upstreamRes.statusCode ?? 502;
  const range = status === 206 ? contentRange(headerValue(upstreamRes.headers, 'content-range')) : undefined;
  const length = Number(headerValue(upstreamRes.headers, 'content-length'));
  const downloadSink =
    op === 'GetBlob' && (status === 200 || range)
      ? await ctx.saver?.downloadSink(target, range ?? { start: 0, total: length })
      : undefined;
  res.writeHead(status, upstreamRes.statusMessage, endToEndHeaders(upstreamRes.rawHeaders));
  let source: NodeJS.ReadableStream = upstreamRes;
  if (downloadSink) {
    const tap = new Tap(downloadSink);
    upstreamRes.on('error', (err) => tap.destroy(err));
    upstreamRes.on('close', () => {
      if (!upstreamRes.complete) tap.destroy(new Error('the upstream dropped the download'));
    });
    source = upstreamRes.pipe(tap);
  }
  const download = pump(source as Tap, res);
  let failure: unknown;
  try {
    await download.done;
  } catch (err) {
    failure = err;
    upstreamRes.destroy();
    res.destroy();
  }
  await downloadSink?.end(failure === undefined).catch(() => undefined);
  if (upload)
    await ctx.saver?.uploadDone(
      target,
      op,
      query.get('blockid') ?? undefined,
      failure === undefined && status < 300,
    );
  const azureCode = headerValue(upstreamRes.headers, 'x-ms-error-code');
  const bytes = upload ? (uploaded?.bytes ?? 0) : download.bytes;
  recordExchange(ctx.journal, ctx.origin, request, {
    ...base,
    status,
    outcome: failure !== undefined ? 'error' : status < 400 ? 'ok' : status === 404 ? 'not-found' : 'error',
    ...(op === 'GetBlobProperties' ? {} : { bytes }),
    ...(failure !== undefined
      ? { reason: 'connection dropped mid-transfer', errorCode: 'connection_dropped' }
      : {}),
    ...(failure === undefined && azureCode ? { errorCode: azureCode, reason: `Azure ${azureCode}` } : {}),
  });
}
