import { pipeline, Readable } from 'node:stream';
import type { BlobServiceClient, ContainerClient, StorageSharedKeyCredential } from '@azure/storage-blob';
import { exactLength } from '../files/layout.js';
import { type BlobProperties, type BlobStore, type BlockListItem, StorageError } from '../types.js';
import { fromAzure } from './errors.js';

export interface AzureBlobStoreOptions {
  /** `DefaultEndpointsProtocol=…;AccountName=…;AccountKey=…;BlobEndpoint=…` (an account key signs the SAS URLs). */
  readonly connectionString: string;
  /** Created if missing. Default `actions-cache`. */
  readonly container?: string;
  /** Bound of every request to the blob service, in ms. Default 30000. */
  readonly timeoutMs?: number;
}

const BLOB_ID = /^[0-9a-f]{32}$/;
/**
 * Names in the container: `<blobId>`, the upload target and, once sealed, what readers get. Earlier
 * builds sealed by a copy to `<blobId>.sealed`; such names are still removed with their entry.
 */
const NAME = /^([0-9a-f]{32})(\.sealed)?$/;
const oldSealedName = (blobId: string) => `${blobId}.sealed`;
/** Azure error codes of a write to a leased blob without (or with another) lease id, and the reverse. */
const LEASED = new Set([
  'LeaseIdMissing',
  'LeaseIdMismatchWithBlobOperation',
  'LeaseIdMismatchWithLeaseOperation',
]);
const NOT_LEASED = 'LeaseNotPresentWithBlobOperation';
/** Bodies up to this size are sent in one Put Blob; larger ones stream as blocks. */
const SINGLE_PUT = 4 * 1024 * 1024;
const RETAIN = 'ghacacheretainuntil';
const escapeXml = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const TAGS = { latest: 'Latest', committed: 'Committed', uncommitted: 'Uncommitted' } as const;

/**
 * Blobs in Azure Blob Storage (or Azurite), through `@azure/storage-blob`. Clients upload and
 * download straight through SAS URLs (`direct`); the mock never touches those bytes. Finalize
 * seals an upload by an infinite lease on it, taken on the ETag it checked: from then on every write
 * through the upload URL (Put Blob, Put Block, Put Block List, Set Metadata) fails with 412 and
 * readers keep the checked content, whatever its size, in one request. The lease id is derived from
 * the account key and the blob id, so every instance can delete what another sealed.
 * The SDK does not retry (the clients own retries); every request is bounded by `timeoutMs`.
 */
export async function createAzureBlobStore(options: AzureBlobStoreOptions): Promise<BlobStore> {
  const azure = await import('@azure/storage-blob');
  const timeoutMs = options.timeoutMs ?? 30_000;
  const containerName = options.container ?? 'actions-cache';
  const service: BlobServiceClient = azure.BlobServiceClient.fromConnectionString(options.connectionString, {
    retryOptions: { maxTries: 1, tryTimeoutInMs: timeoutMs },
  });
  if (!(service.credential instanceof azure.StorageSharedKeyCredential)) {
    throw new Error('the Azure connection string must hold an AccountKey: it signs the SAS URLs');
  }
  const credential: StorageSharedKeyCredential = service.credential;
  const container: ContainerClient = service.getContainerClient(containerName);
  try {
    await container.createIfNotExists();
  } catch (err) {
    throw new Error(`cannot open the Azure container "${containerName}": ${(err as Error).message}`, {
      cause: err,
    });
  }

  // Every lookup signs a URL: the container's URL once, not a client per call.
  const containerUrl = container.url;
  /** The lease that seals `blobId`: a GUID only holders of the account key can compute. */
  const sealLease = (blobId: string): string => {
    const h = Buffer.from(credential.computeHMACSHA256(`gha-cache-seal:${blobId}`), 'base64').toString('hex');
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
  };
  const codeOf = (err: unknown) => (err as { code?: unknown } | undefined)?.code;
  /**
   * Runs a write on a name that may be sealed: without a lease, then (when Azure says the blob is
   * leased) with the seal's lease id, then (a lease of another id) after breaking it.
   */
  const onLeased = async <T>(name: string, op: (leaseId?: string) => Promise<T>): Promise<T> => {
    try {
      return await op();
    } catch (err) {
      if (!LEASED.has(String(codeOf(err)))) throw err;
    }
    const blobId = name.slice(0, 32);
    try {
      return await op(sealLease(blobId));
    } catch (err) {
      if (!LEASED.has(String(codeOf(err))) && codeOf(err) !== NOT_LEASED) throw err;
    }
    await container.getBlobClient(name).getBlobLeaseClient().breakLease(0);
    return op();
  };

  const sign = (name: string, permissions: string, ttlMs: number): string => {
    const now = Date.now();
    const query = azure
      .generateBlobSASQueryParameters(
        {
          containerName,
          blobName: name,
          permissions: azure.BlobSASPermissions.parse(permissions),
          // Some slack for clocks that run behind.
          startsOn: new Date(now - 5 * 60_000),
          expiresOn: new Date(now + ttlMs),
        },
        credential,
      )
      .toString();
    return `${containerUrl}/${name}?${query}`;
  };
  const check = (blobId: string) => {
    if (!BLOB_ID.test(blobId)) throw new StorageError('BlobNotFound', `blob ${blobId} does not exist`);
  };
  const propertiesOf = (p: {
    contentLength?: number;
    etag?: string;
    lastModified?: Date;
    createdOn?: Date;
  }): BlobProperties => ({
    size: p.contentLength ?? 0,
    etag: p.etag ?? '""',
    lastModified: p.lastModified?.getTime() ?? 0,
    createdAt: p.createdOn?.getTime() ?? p.lastModified?.getTime() ?? 0,
  });
  /** Committed properties of one name, or `undefined` (404). */
  const head = async (name: string): Promise<BlobProperties | undefined> => {
    try {
      return propertiesOf(await container.getBlobClient(name).getProperties());
    } catch (err) {
      const mapped = fromAzure(err, `Get Blob Properties ${name}`);
      if (mapped instanceof StorageError && mapped.code === 'BlobNotFound') return undefined;
      throw mapped;
    }
  };
  /** Put Block List with the items in document order (the SDK would group them by kind). */
  const putBlockList = async (name: string, items: readonly BlockListItem[]): Promise<void> => {
    const xml = `<?xml version="1.0" encoding="utf-8"?><BlockList>${items
      .map((i) => `<${TAGS[i.kind]}>${escapeXml(i.id)}</${TAGS[i.kind]}>`)
      .join('')}</BlockList>`;
    let res: Response;
    try {
      res = await fetch(`${sign(name, 'w', 10 * 60_000)}&comp=blocklist`, {
        method: 'PUT',
        body: xml,
        headers: { 'content-type': 'application/xml' },
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (err) {
      throw fromAzure(err, `Put Block List ${name}`);
    }
    const text = await res.text();
    if (res.status !== 201) throw fromAzure(undefined, `Put Block List ${name}`, res.status, text);
  };
  /** The committed content of a blob id (what the mock's own reads see). */
  const current = async (blobId: string) => {
    const uploaded = await head(blobId);
    return uploaded && { name: blobId, properties: uploaded };
  };
  const deleteName = async (name: string): Promise<boolean> => {
    try {
      return (
        (await onLeased(name, (leaseId) =>
          container.deleteBlob(name, {
            deleteSnapshots: 'include',
            ...(leaseId ? { conditions: { leaseId } } : {}),
          }),
        )) !== undefined
      );
    } catch (err) {
      const mapped = fromAzure(err, `Delete Blob ${name}`);
      if (mapped instanceof StorageError && mapped.code === 'BlobNotFound') return false;
      throw mapped;
    }
  };

  return {
    kind: 'azure',

    async putBlob(blobId, body, length) {
      try {
        check(blobId);
      } catch (err) {
        body.resume();
        throw err;
      }
      const checked = exactLength(length);
      let bodyError: unknown;
      pipeline(body, checked, (err) => {
        bodyError = err;
      });
      const client = container.getBlockBlobClient(blobId);
      try {
        // Put Blob drops the staged blocks (C-62); not every service does, so drop them first.
        const staged = await client.getBlockList('uncommitted').catch(() => undefined);
        if (staged?.uncommittedBlocks?.length) await putBlockList(blobId, []);
        if (length <= SINGLE_PUT) {
          const chunks: Buffer[] = [];
          for await (const c of checked) chunks.push(c as Buffer);
          await client.upload(Buffer.concat(chunks), length);
        } else {
          await client.uploadStream(checked, SINGLE_PUT, 4);
        }
      } catch (err) {
        throw bodyError ?? fromAzure(err, `Put Blob ${blobId}`);
      }
      return (await head(blobId))!;
    },

    async putBlock(blobId, blockId, body, length) {
      try {
        check(blobId);
      } catch (err) {
        body.resume();
        throw err;
      }
      const checked = exactLength(length);
      let bodyError: unknown;
      pipeline(body, checked, (err) => {
        bodyError = err;
      });
      try {
        const chunks: Buffer[] = [];
        for await (const c of checked) chunks.push(c as Buffer);
        await container.getBlockBlobClient(blobId).stageBlock(blockId, Buffer.concat(chunks), length);
      } catch (err) {
        throw bodyError ?? fromAzure(err, `Put Block ${blobId}`);
      }
    },

    async commitBlockList(blobId, items) {
      check(blobId);
      await putBlockList(blobId, items);
      return (await head(blobId))!;
    },

    async getBlobProperties(blobId) {
      if (!BLOB_ID.test(blobId)) return undefined;
      return (await current(blobId))?.properties;
    },

    async openBlob(blobId, range) {
      check(blobId);
      const found = await current(blobId);
      if (!found) throw new StorageError('BlobNotFound', `blob ${blobId} does not exist`);
      try {
        const offset = range?.start ?? 0;
        const count = range ? range.end - range.start + 1 : undefined;
        const res = await container
          .getBlobClient(found.name)
          .download(offset, count, { conditions: { ifMatch: found.properties.etag } });
        const stream = res.readableStreamBody as Readable | undefined;
        return { properties: found.properties, stream: stream ? Readable.from(stream) : Readable.from([]) };
      } catch (err) {
        throw fromAzure(err, `Get Blob ${blobId}`);
      }
    },

    async discardBlob(blobId, retainUntil, now) {
      if (!BLOB_ID.test(blobId)) return;
      for (const name of [blobId, oldSealedName(blobId)]) {
        if (retainUntil > now) {
          try {
            await onLeased(name, (leaseId) =>
              container
                .getBlobClient(name)
                .setMetadata({ [RETAIN]: String(retainUntil) }, leaseId ? { conditions: { leaseId } } : {}),
            );
            continue;
          } catch (err) {
            const mapped = fromAzure(err, `Set Blob Metadata ${name}`);
            if (!(mapped instanceof StorageError && mapped.code === 'BlobNotFound')) throw mapped;
          }
        }
        if (name === blobId) {
          // An empty commit drops the staged blocks, which Delete Blob alone may leave (a sealed
          // blob has none: the lease refuses them).
          await putBlockList(blobId, []).catch(() => undefined);
        }
        await deleteName(name);
      }
    },

    async sweep(now, owners) {
      const removed = new Set<string>();
      /** Names with committed content (the first listing); the second also lists staged-only blobs. */
      const committed = new Set<string>();
      const pass = async (stagedOnly: boolean) => {
        const pages = container
          .listBlobsFlat({ includeMetadata: true, includeUncommitedBlobs: stagedOnly })
          .byPage({ maxPageSize: 500 });
        for await (const page of pages) {
          const blobs = page.segment.blobItems.flatMap((b) => {
            const m = NAME.exec(b.name);
            if (!m || (stagedOnly && committed.has(b.name))) return [];
            if (!stagedOnly) committed.add(b.name);
            return [{ name: b.name, blobId: m[1]!, retain: b.metadata?.[RETAIN] }];
          });
          const owned = await owners([...new Set(blobs.map((b) => b.blobId))]);
          for (const b of blobs) {
            if (stagedOnly) {
              // Staged blocks of no entry at all (never a sealed name, never an owned one, whatever
              // was committed since the first pass): an empty commit drops them, then the blob goes.
              if (owned.has(b.blobId) || b.name.endsWith('.sealed')) continue;
              await putBlockList(b.name, []);
              await deleteName(b.name);
              continue;
            }
            const expired = b.retain !== undefined ? Number(b.retain) <= now : !owned.has(b.blobId);
            if (expired && (await deleteName(b.name))) removed.add(b.blobId);
          }
        }
      };
      try {
        await pass(false);
        await pass(true);
      } catch (err) {
        throw fromAzure(err, 'List Blobs');
      }
      return removed.size;
    },

    direct: {
      limitations: [
        'blob-side fault rules (ops PutBlob, PutBlock, PutBlockList, GetBlob, HeadBlob) never fire: clients talk to Azure Blob Storage directly',
        'the simulated clock does not move SAS expiry: Azure checks it against real time',
        'the traffic journal, the UI and /metrics see no blob operations (no blob events, no bytes uploaded or downloaded)',
      ],
      uploadUrl: (blobId, ttlMs) => sign(blobId, 'cw', ttlMs),
      downloadUrl: (blobId, ttlMs) => sign(blobId, 'r', ttlMs),
      async seal(blobId, sizeBytes) {
        check(blobId);
        // On exactly the content checked: a write between the HEAD and the lease fails the lease
        // (412), never seals other bytes; then the check runs again. A retried Finalize finds its
        // own lease (same id) and takes it again.
        for (let attempt = 0; attempt < 3; attempt++) {
          const uploaded = await head(blobId);
          if (!uploaded || uploaded.size !== sizeBytes) return uploaded;
          try {
            await container
              .getBlobClient(blobId)
              .getBlobLeaseClient(sealLease(blobId))
              .acquireLease(-1, { conditions: { ifMatch: uploaded.etag } });
            return uploaded;
          } catch (err) {
            if (codeOf(err) !== 'ConditionNotMet') throw fromAzure(err, `Lease Blob ${blobId}`);
          }
        }
        throw new StorageError('Unavailable', `blob ${blobId} kept changing while Finalize sealed it`);
      },
    },

    async close() {},
  };
}
