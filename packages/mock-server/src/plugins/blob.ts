import { randomUUID } from 'node:crypto';
import { PassThrough, Readable } from 'node:stream';
import type { FastifyError, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { validateBlockId } from '../blob/block-id.js';
import { parseBlockListXml } from '../blob/block-list-xml.js';
import { renderAzureErrorXml } from '../blob/error-xml.js';
import { blobErrors } from '../blob/errors.js';
import { parseRange, pickRangeHeader } from '../blob/ranges.js';
import type { SasSigner } from '../blob/sas.js';
import type { Clock } from '../clock.js';
import { AzureError, azureErrors, isOutOfSpace } from '../errors.js';
import type { RequestAudit } from '../request-log.js';
import { type BlobProperties, type CacheStorage, StorageError } from '../storage/types.js';

const MiB = 1024 * 1024;

export interface BlobPluginOptions {
  readonly storage: CacheStorage;
  readonly clock: Clock;
  /** Verifies the SAS of every request; its `accountName` must equal `accountName`. */
  readonly sas: SasSigner;
  /** First path segment of blob URLs, e.g. `devstoreaccount1`. */
  readonly accountName: string;
  /** Second path segment of blob URLs, e.g. `actions-cache`. */
  readonly containerName: string;
  /** Largest Put Blob body; larger → 413 `RequestBodyTooLarge`. Default 5000 MiB (Azure's limit). */
  readonly maxBlobBytes?: number;
  /** Largest Put Block body; larger → 413. Default 4000 MiB (Azure's limit). */
  readonly maxBlockBytes?: number;
  /** Largest Put Block List body; larger → 413. Default 8 MiB (50,000 GO ids of 88 chars fit). */
  readonly maxBlockListBytes?: number;
}

/** The service version echoed when a request sends none. */
export const DEFAULT_X_MS_VERSION = '2024-11-04';

/** Azure's limit on ids in one Put Block List. */
export const MAX_BLOCK_LIST_IDS = 50_000;

/** Blob ids are opaque storage names: a conservative alphabet, never `.`/`..`, no `/`, no NUL. */
const BLOB_ID = /^(?!\.{1,2}$)[A-Za-z0-9._-]{1,256}$/;
const CONTAINER_NAME = /^[a-z0-9](?:[a-z0-9]|-(?!-)){1,61}[a-z0-9]$/;

/** Response headers that describe a blob; dropped when an error replaces the response. */
const SUCCESS_HEADERS = [
  'etag',
  'last-modified',
  'accept-ranges',
  'content-range',
  'x-ms-blob-type',
  'x-ms-creation-time',
  'x-ms-request-server-encrypted',
  'x-ms-server-encrypted',
  'x-ms-lease-state',
  'x-ms-lease-status',
];

/**
 * Answers an Azure error: XML body (none for HEAD), `x-ms-error-code`, `x-ms-request-id` (kept if already
 * set), and none of the success headers. Also used for requests that never reach the blob routes.
 */
export function sendAzureError(reply: FastifyReply, azure: AzureError, now: number): FastifyReply {
  let requestId = reply.getHeader('x-ms-request-id');
  if (typeof requestId !== 'string') {
    requestId = randomUUID();
    reply.header('x-ms-request-id', requestId);
  }
  for (const name of SUCCESS_HEADERS) reply.removeHeader(name);
  if (!reply.hasHeader('x-ms-version')) reply.header('x-ms-version', DEFAULT_X_MS_VERSION);
  reply.header('date', new Date(now).toUTCString());
  reply.code(azure.status).headers(azure.headers).header('x-ms-error-code', azure.code);
  if (reply.request.method === 'HEAD') {
    // HEAD errors carry no body: the header is their only code.
    return reply.header('content-length', '0').send();
  }
  return reply.type('application/xml').send(renderAzureErrorXml(azure, requestId, now));
}

function header(request: FastifyRequest, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function audit(request: FastifyRequest): RequestAudit {
  request.audit ??= {};
  return request.audit;
}

/** The request body: the stream our content-type parser passed through, or the raw request. */
function bodyOf(request: FastifyRequest): Readable {
  return request.body instanceof Readable ? request.body : request.raw;
}

/**
 * The body handed to a storage write. A failed write (a full disk) destroys the stream it was given;
 * destroyed, the request would reset the connection before the client reads the error. So storage gets
 * a pass-through, and after a failure the rest of the request is read and discarded: the client finishes
 * sending, reads the Azure error and may retry on the same connection. A client that goes away still
 * ends the write (as `ECONNRESET`).
 */
function writeBodyOf(request: FastifyRequest): Readable {
  const source = bodyOf(request);
  const through = new PassThrough({ highWaterMark: 256 * 1024 });
  source.pipe(through);
  source.once('close', () => {
    if (!source.readableEnded && !through.destroyed) {
      through.destroy(Object.assign(new Error('the client closed the request body'), { code: 'ECONNRESET' }));
    }
  });
  through.once('close', () => {
    if (source.readableEnded || source.destroyed) return;
    source.unpipe(through);
    source.resume();
  });
  return through;
}

function queryOf(request: FastifyRequest): URLSearchParams {
  const q = request.url.indexOf('?');
  return new URLSearchParams(q < 0 ? '' : request.url.slice(q + 1));
}

async function readBody(body: Readable, length: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of body) {
    const buf = chunk as Buffer;
    total += buf.length;
    if (total > length) throw blobErrors.incompleteBody();
    chunks.push(buf);
  }
  if (total !== length) throw blobErrors.incompleteBody();
  return Buffer.concat(chunks, total);
}

/** Turns anything a handler or Fastify threw into the Azure error to answer with. */
function toAzureError(error: unknown): AzureError {
  if (error instanceof AzureError) return error;
  if (error instanceof StorageError) {
    switch (error.code) {
      case 'InvalidBlockList':
        return azureErrors.invalidBlockList();
      case 'InvalidBlobOrBlock':
        return azureErrors.invalidBlobOrBlock();
      case 'BlobNotFound':
        return azureErrors.blobNotFound();
      case 'IncompleteBody':
        return blobErrors.incompleteBody();
    }
  }
  if (isOutOfSpace(error)) return azureErrors.outOfSpace();
  const e = error as Partial<FastifyError> & { code?: unknown };
  if (e?.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return blobErrors.unsupportedMediaType();
  if (e?.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return azureErrors.tooLarge();
  // The client went away mid-body: nobody reads the answer, but it must not look like our fault.
  if (e?.code === 'ECONNRESET' || e?.code === 'ERR_STREAM_PREMATURE_CLOSE')
    return blobErrors.incompleteBody();
  if (typeof e?.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
    return new AzureError(e.statusCode, 'InvalidInput', 'One of the request inputs is not valid.');
  }
  return azureErrors.internal();
}

/**
 * The Azure Blob subset (docs/protocol.md §5): Put Blob, Put Block, Put Block List, Get Blob (ranged),
 * Get Blob Properties, under `/<accountName>/<containerName>/<blobId>`, authorised by the SAS only.
 * Encapsulated: its own pass-through body parser (no body limit, no 415), its own Azure XML error
 * handler, and `x-ms-request-id`/`x-ms-version`/`Date` on every response. Register it with
 * `exposeHeadRoutes: false` on the app (it declares HEAD itself) and after `requestLogPlugin`.
 */
export const blobPlugin: FastifyPluginAsync<BlobPluginOptions> = async (app, options) => {
  const { storage, clock, sas, accountName, containerName } = options;
  const maxBlobBytes = options.maxBlobBytes ?? 5000 * MiB;
  const maxBlockBytes = options.maxBlockBytes ?? 4000 * MiB;
  const maxBlockListBytes = options.maxBlockListBytes ?? 8 * MiB;
  if (sas.accountName !== accountName) {
    throw new TypeError(`blobPlugin: sas signs for "${sas.accountName}" but accountName is "${accountName}"`);
  }
  if (!CONTAINER_NAME.test(containerName)) {
    throw new TypeError(`blobPlugin: invalid container name "${containerName}"`);
  }

  // Bodies stream straight into storage: never parsed, never limited by bodyLimit, no 415.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_request, payload, done) => {
    done(null, payload);
  });

  app.addHook('onRequest', async (request, reply) => {
    // Blob bodies are opaque bytes: their Content-Type never matters, and a malformed one must not
    // make Fastify answer 415 before our pass-through parser runs.
    delete request.raw.headers['content-type'];
    const version = header(request, 'x-ms-version');
    reply.header('x-ms-request-id', randomUUID());
    reply.header(
      'x-ms-version',
      version !== undefined && /^[\x21-\x7e]{1,64}$/.test(version) ? version : DEFAULT_X_MS_VERSION,
    );
  });
  app.addHook('onSend', async (_request, reply, payload) => {
    reply.header('date', new Date(clock.now()).toUTCString());
    return payload;
  });

  app.setErrorHandler((error, request, reply) => {
    const azure = toAzureError(error);
    // An injected fault already has its own log line; only a real failure is an error.
    if (azure.status >= 500 && !request.faultPlan) request.log.error({ err: error }, 'blob request failed');
    else request.log.debug({ err: error }, 'blob request rejected');
    return sendAzureError(reply, azure, clock.now());
  });

  const blobIdOf = (request: FastifyRequest): string => {
    const { blobId } = request.params as { blobId?: string };
    if (blobId === undefined || !BLOB_ID.test(blobId)) throw azureErrors.invalidUri();
    return blobId;
  };

  const authorize = (blobId: string, query: URLSearchParams, now: number, anyOfPermissions: string) =>
    sas.verify({ containerName, blobName: blobId, query, now, anyOfPermissions });

  /** Writes go only to blobs of pending entries: the upload grant ends at Finalize (§4.1, C-34). */
  const requirePending = async (blobId: string): Promise<void> => {
    const entry = await storage.metadata.findEntryByBlobId(blobId);
    if (entry?.state !== 'pending') throw azureErrors.permissionMismatch();
  };

  const contentLength = (request: FastifyRequest, reply: FastifyReply, max: number): number => {
    const value = header(request, 'content-length');
    if (value === undefined) throw azureErrors.missingContentLength();
    const length = Number(value);
    if (!/^\d+$/.test(value) || !Number.isSafeInteger(length)) {
      throw azureErrors.invalidHeader('Content-Length', value);
    }
    if (length > max) {
      // Do not drain gigabytes we refuse anyway.
      reply.header('connection', 'close');
      throw azureErrors.tooLarge();
    }
    return length;
  };

  const created = (reply: FastifyReply, properties?: BlobProperties) => {
    reply.code(201).header('x-ms-request-server-encrypted', 'true');
    if (properties) {
      reply
        .header('etag', properties.etag)
        .header('last-modified', new Date(properties.lastModified).toUTCString());
    }
    return reply.send();
  };

  /** Every write: names the operation, checks the SAS (at request start) and that the entry is still pending. */
  const beginWrite = async (
    request: FastifyRequest,
    op: string,
    blobId: string,
    query: URLSearchParams,
    anyOfPermissions: string | (() => Promise<string>),
  ): Promise<void> => {
    audit(request).op = op;
    const now = clock.now();
    authorize(
      blobId,
      query,
      now,
      typeof anyOfPermissions === 'string' ? anyOfPermissions : await anyOfPermissions(),
    );
    await requirePending(blobId);
  };

  const putBlob = async (
    request: FastifyRequest,
    reply: FastifyReply,
    blobId: string,
    query: URLSearchParams,
  ) => {
    await beginWrite(request, 'PutBlob', blobId, query, async () =>
      (await storage.blobs.getBlobProperties(blobId)) ? 'w' : 'cw',
    );
    const blobType = header(request, 'x-ms-blob-type');
    if (blobType === undefined) throw azureErrors.missingHeader('x-ms-blob-type');
    if (blobType !== 'BlockBlob') throw azureErrors.invalidHeader('x-ms-blob-type', blobType);
    const length = contentLength(request, reply, maxBlobBytes);
    const properties = await storage.blobs.putBlob(blobId, writeBodyOf(request), length, clock.now());
    audit(request).bytes = length;
    return created(reply, properties);
  };

  const putBlock = async (
    request: FastifyRequest,
    reply: FastifyReply,
    blobId: string,
    query: URLSearchParams,
  ) => {
    await beginWrite(request, 'PutBlock', blobId, query, 'w');
    // Base64 has no spaces: a raw `+` decoded as form data arrives as one.
    const blockId = query.get('blockid')?.replaceAll(' ', '+');
    if (blockId === undefined) throw blobErrors.missingQueryParameter('blockid');
    validateBlockId(blockId);
    const length = contentLength(request, reply, maxBlockBytes);
    await storage.blobs.putBlock(blobId, blockId, writeBodyOf(request), length);
    audit(request).bytes = length;
    return created(reply);
  };

  const putBlockList = async (
    request: FastifyRequest,
    reply: FastifyReply,
    blobId: string,
    query: URLSearchParams,
  ) => {
    await beginWrite(request, 'PutBlockList', blobId, query, 'w');
    const length = contentLength(request, reply, maxBlockListBytes);
    const xml = await readBody(bodyOf(request), length);
    const items = parseBlockListXml(xml.toString('utf8'));
    if (items.length > MAX_BLOCK_LIST_IDS) throw blobErrors.blockListTooLong();
    const properties = await storage.blobs.commitBlockList(blobId, items, clock.now());
    audit(request).bytes = length;
    return created(reply, properties);
  };

  const describe = (reply: FastifyReply, p: BlobProperties) =>
    reply.headers({
      'content-type': 'application/octet-stream',
      etag: p.etag,
      'last-modified': new Date(p.lastModified).toUTCString(),
      'x-ms-creation-time': new Date(p.createdAt).toUTCString(),
      'accept-ranges': 'bytes',
      'x-ms-blob-type': 'BlockBlob',
      'x-ms-server-encrypted': 'true',
      'x-ms-lease-state': 'available',
      'x-ms-lease-status': 'unlocked',
    });

  /** `If-Match` → 412, `If-None-Match` → 304, and their date forms, as Azure evaluates them. */
  const preconditions = (request: FastifyRequest, p: BlobProperties): 'ok' | 'not-modified' => {
    const tags = (v: string) => v.split(',').map((t) => t.trim().replace(/^W\//, ''));
    const ifMatch = header(request, 'if-match');
    if (ifMatch !== undefined && !tags(ifMatch).some((t) => t === '*' || t === p.etag)) {
      throw azureErrors.conditionNotMet();
    }
    const ifUnmodifiedSince = Date.parse(header(request, 'if-unmodified-since') ?? '');
    if (ifMatch === undefined && ifUnmodifiedSince < Math.floor(p.lastModified / 1000) * 1000) {
      throw azureErrors.conditionNotMet();
    }
    const ifNoneMatch = header(request, 'if-none-match');
    if (ifNoneMatch !== undefined) {
      return tags(ifNoneMatch).some((t) => t === '*' || t === p.etag) ? 'not-modified' : 'ok';
    }
    const ifModifiedSince = Date.parse(header(request, 'if-modified-since') ?? '');
    return ifModifiedSince >= Math.floor(p.lastModified / 1000) * 1000 ? 'not-modified' : 'ok';
  };

  const getBlob = async (request: FastifyRequest, reply: FastifyReply) => {
    const now = clock.now();
    const head = request.method === 'HEAD';
    audit(request).op = head ? 'GetBlobProperties' : 'GetBlob';
    const blobId = blobIdOf(request);
    authorize(blobId, queryOf(request), now, 'r');

    // A commit between reading the properties and opening the content is retried, so headers and
    // bytes always describe the same version.
    for (let attempt = 1; ; attempt++) {
      const properties = await storage.blobs.getBlobProperties(blobId);
      if (!properties) throw azureErrors.blobNotFound();
      if (preconditions(request, properties) === 'not-modified') {
        describe(reply, properties).code(304).header('content-length', String(properties.size));
        return reply.send();
      }
      if (head) {
        describe(reply, properties).header('content-length', String(properties.size));
        return reply.code(200).send();
      }
      const range = parseRange(pickRangeHeader(request.headers), properties.size);
      if (range.kind === 'unsatisfiable') throw azureErrors.invalidRange(properties.size);
      const opened = await storage.blobs.openBlob(blobId, range.kind === 'range' ? range.range : undefined);
      if (opened.properties.etag !== properties.etag && attempt < 3) {
        opened.stream.destroy();
        continue;
      }
      describe(reply, opened.properties);
      let length = properties.size;
      if (range.kind === 'range') {
        const { start, end } = range.range;
        length = end - start + 1;
        reply.code(206).header('content-range', `bytes ${start}-${end}/${properties.size}`);
      } else {
        reply.code(200);
      }
      audit(request).bytes = length;
      return reply.header('content-length', String(length)).send(opened.stream);
    }
  };

  const put = async (request: FastifyRequest, reply: FastifyReply) => {
    const blobId = blobIdOf(request);
    const query = queryOf(request);
    const comp = query.get('comp');
    if (comp === null) return putBlob(request, reply, blobId, query);
    if (comp === 'block') return putBlock(request, reply, blobId, query);
    if (comp === 'blocklist') return putBlockList(request, reply, blobId, query);
    throw azureErrors.invalidQueryValue('comp', comp);
  };

  await app.register(
    async (scope) => {
      scope.route({ method: 'HEAD', url: '/:blobId', handler: getBlob });
      scope.route({ method: 'GET', url: '/:blobId', exposeHeadRoute: false, handler: getBlob });
      scope.route({ method: 'PUT', url: '/:blobId', handler: put });
      scope.route({
        method: ['DELETE', 'PATCH', 'POST', 'OPTIONS'],
        url: '/:blobId',
        handler: async () => {
          throw azureErrors.unsupportedVerb();
        },
      });
      // Anything else under the container (extra segments, empty names, other verbs) is ours to refuse.
      scope.setNotFoundHandler(async (request) => {
        if (!['GET', 'HEAD', 'PUT'].includes(request.method)) throw azureErrors.unsupportedVerb();
        throw azureErrors.invalidUri();
      });
    },
    { prefix: `/${encodeURIComponent(accountName)}/${containerName}` },
  );
};
