import { randomBytes } from 'node:crypto';
import {
  BlobSASPermissions,
  BlockBlobClient,
  generateBlobSASQueryParameters,
  SASProtocol,
  StorageSharedKeyCredential,
} from '@azure/storage-blob';
import { describe, expect, it } from 'vitest';
import { AzureError } from '../errors.js';
import { createSasSigner, formatSasDate, formValue, parseSasDate, type SasVerifyInput } from './sas.js';

const accountName = 'devstoreaccount1';
const containerName = 'actions-cache';
const blobId = '5f0c2a9e4b7d4e1f8a6b3c2d1e0f9a8b';
const accountKey = randomBytes(64);
const signer = createSasSigner({ accountName, accountKey });
const NOW = Date.UTC(2026, 10, 26, 12, 0, 0, 250);
const MIN = 60_000;

function sign(permissions = 'r', expiresAt = NOW + 10 * MIN, base = 'http://127.0.0.1:8787') {
  return new URL(signer.signBlobUrl(base, containerName, blobId, permissions, expiresAt, NOW));
}

function input(url: URL, overrides: Partial<SasVerifyInput> = {}): SasVerifyInput {
  return {
    containerName,
    blobName: decodeURIComponent(url.pathname.split('/').at(-1)!),
    query: url.search,
    now: NOW,
    anyOfPermissions: 'r',
    ...overrides,
  };
}

function azureError(fn: () => unknown): AzureError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(AzureError);
    return err as AzureError;
  }
  throw new Error('expected an AzureError');
}

/** Go's url.Values.Encode(): keys sorted, QueryEscape (space → `+`). */
function goReencode(search: string): string {
  const params = [...new URLSearchParams(search)].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return params
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v).replace(/%20/g, '+')}`)
    .join('&');
}

describe('SAS dates', () => {
  it('formats whole UTC seconds and parses the ISO forms Azure accepts', () => {
    expect(formatSasDate(NOW)).toBe('2026-11-26T12:00:00Z');
    expect(parseSasDate('2026-11-26T12:00:00Z')).toBe(Date.UTC(2026, 10, 26, 12));
    expect(parseSasDate('2026-11-26T12:00Z')).toBe(Date.UTC(2026, 10, 26, 12));
    expect(parseSasDate('2026-11-26')).toBe(Date.UTC(2026, 10, 26));
    expect(parseSasDate('2026-11-26T12:00:00.1234567Z')).toBe(Date.UTC(2026, 10, 26, 12, 0, 0, 123));
    for (const bad of [
      '',
      '2026-02-30T00:00:00Z',
      '2026-11-26T25:00:00Z',
      '2026-11-26T12:00:00',
      'tomorrow',
    ]) {
      expect(parseSasDate(bad)).toBeUndefined();
    }
  });
});

describe('formValue', () => {
  it('encodes exactly as URLSearchParams does', () => {
    const values = [
      '2026-12-04T23:10:00Z',
      '2025-11-05',
      'cw',
      'r',
      randomBytes(32).toString('base64'),
      'a+b/c=d',
      "a b!'()~*._-",
      'ünï©ødé 😀',
      '',
    ];
    for (const v of values) expect(formValue(v)).toBe(new URLSearchParams({ v }).toString().slice(2));
  });
});

describe('signBlobUrl', () => {
  it('C-55/C-25: issues a 3-segment URL with sv, st (now − 5 min), se, sr=b, sp and sig, percent-encoded', () => {
    const url = sign('cw', NOW + 60 * MIN);
    expect(url.pathname).toBe(`/${accountName}/${containerName}/${blobId}`);
    expect([...url.searchParams.keys()]).toEqual(['sv', 'st', 'se', 'sr', 'sp', 'sig']);
    expect(url.searchParams.get('sv')).toBe('2024-11-04');
    expect(url.searchParams.get('st')).toBe('2026-11-26T11:55:00Z');
    expect(url.searchParams.get('se')).toBe('2026-11-26T13:00:00Z');
    expect(url.searchParams.get('sr')).toBe('b');
    expect(url.searchParams.get('sp')).toBe('cw');
    expect(url.search).toContain('se=2026-11-26T13%3A00%3A00Z');
    // No raw base64 specials in the query: `+` would come back from GO as a space.
    expect(url.search.slice(url.search.indexOf('sig=') + 4)).toMatch(/^[A-Za-z0-9%]+$/);
  });

  it('keeps a path prefix of the public base URL', () => {
    expect(sign('r', NOW + MIN, 'http://mock.localhost:9/cache').pathname).toBe(
      `/cache/${accountName}/${containerName}/${blobId}`,
    );
    expect(sign('r', NOW + MIN, 'http://mock.localhost:9/cache/').pathname).toBe(
      `/cache/${accountName}/${containerName}/${blobId}`,
    );
  });

  it('C-55: @azure/storage-blob BlockBlobClient parses every issued URL', () => {
    for (const permissions of ['r', 'cw']) {
      for (const base of ['http://127.0.0.1:8787', 'http://localhost:3000', 'http://[::1]:45678']) {
        const client = new BlockBlobClient(
          signer.signBlobUrl(base, containerName, blobId, permissions, NOW + MIN, NOW),
        );
        expect(client.accountName).toBe(accountName);
        expect(client.containerName).toBe(containerName);
        expect(client.name).toBe(blobId);
      }
    }
  });
});

describe('verify', () => {
  it('accepts its own URLs and returns the SAS facts', () => {
    const url = sign('cw', NOW + 60 * MIN);
    expect(signer.verify(input(url, { anyOfPermissions: 'cw' }))).toEqual({
      version: '2024-11-04',
      permissions: 'cw',
      startsAt: Date.UTC(2026, 10, 26, 11, 55),
      expiresAt: Date.UTC(2026, 10, 26, 13, 0),
    });
  });

  it('C-58: a query re-sorted and re-encoded GO-style, with timeout and unknown parameters, is authorised', () => {
    const url = sign('cw');
    const resorted = goReencode(
      `${url.search}&comp=block&blockid=${encodeURIComponent('AAAA+/==')}&timeout=30`,
    );
    expect(resorted.startsWith('blockid=')).toBe(true);
    expect(() => signer.verify(input(url, { query: resorted, anyOfPermissions: 'w' }))).not.toThrow();
    expect(() =>
      signer.verify(
        input(url, { query: `?snapshot=x&${url.search.slice(1)}&foo=bar`, anyOfPermissions: 'c' }),
      ),
    ).not.toThrow();
  });

  it('C-58: a raw `+` in sig that arrives decoded as a space is still accepted', () => {
    // Find a signature containing `+` and hand it over raw (form decoding turns it into a space).
    for (let i = 0; i < 200; i++) {
      const url = new URL(signer.signBlobUrl('http://h:1', containerName, `b${i}`, 'r', NOW + MIN, NOW));
      const sig = url.searchParams.get('sig')!;
      if (!sig.includes('+')) continue;
      const raw = url.search.replace(/sig=[^&]*/, `sig=${sig}`);
      expect(new URLSearchParams(raw).get('sig')).toContain(' ');
      expect(() => signer.verify(input(url, { query: raw }))).not.toThrow();
      return;
    }
    throw new Error('no signature with + in 200 tries');
  });

  it('C-82: missing or tampered sig → AuthenticationFailed', () => {
    const url = sign();
    const noSig = new URLSearchParams(url.search);
    noSig.delete('sig');
    expect(azureError(() => signer.verify(input(url, { query: noSig }))).code).toBe('AuthenticationFailed');

    const sig = url.searchParams.get('sig')!;
    const tampered = new URLSearchParams(url.search);
    tampered.set('sig', (sig[0] === 'A' ? 'B' : 'A') + sig.slice(1));
    const e = azureError(() => signer.verify(input(url, { query: tampered })));
    expect(e.status).toBe(403);
    expect(e.code).toBe('AuthenticationFailed');
    expect(e.details.AuthenticationErrorDetail).toMatch(
      /^Signature did not match\. String to sign used was r\n/,
    );

    const shortSig = new URLSearchParams(url.search);
    shortSig.set('sig', sig.slice(0, -1));
    expect(azureError(() => signer.verify(input(url, { query: shortSig }))).code).toBe(
      'AuthenticationFailed',
    );
  });

  it('C-82: a tampered path (other blob or container) or tampered field → AuthenticationFailed', () => {
    const url = sign();
    expect(azureError(() => signer.verify(input(url, { blobName: `${blobId}x` }))).code).toBe(
      'AuthenticationFailed',
    );
    expect(azureError(() => signer.verify(input(url, { containerName: 'other' }))).code).toBe(
      'AuthenticationFailed',
    );
    for (const [name, value] of [
      ['sp', 'rw'],
      ['se', '2099-01-01T00:00:00Z'],
      ['sr', 'c'],
      ['sv', '2021-01-01'],
    ] as const) {
      const q = new URLSearchParams(url.search);
      q.set(name, value);
      expect(azureError(() => signer.verify(input(url, { query: q }))).code).toBe('AuthenticationFailed');
    }
  });

  it('C-53: after se, or before st → AuthenticationFailed with the time-frame detail', () => {
    const url = sign('r', NOW + 10 * MIN);
    expect(() => signer.verify(input(url, { now: NOW + 10 * MIN - 250 }))).not.toThrow();
    const late = azureError(() => signer.verify(input(url, { now: NOW + 11 * MIN })));
    expect(late.status).toBe(403);
    expect(late.code).toBe('AuthenticationFailed');
    expect(late.details.AuthenticationErrorDetail).toBe(
      'Signature not valid in the specified time frame: Start [Thu, 26 Nov 2026 11:55:00 GMT] - ' +
        'Expiry [Thu, 26 Nov 2026 12:10:00 GMT] - Current [Thu, 26 Nov 2026 12:11:00 GMT]',
    );
    const early = azureError(() => signer.verify(input(url, { now: NOW - 6 * MIN })));
    expect(early.code).toBe('AuthenticationFailed');
  });

  it('C-83: a missing permission letter → AuthorizationPermissionMismatch, checked after signature and time', () => {
    const url = sign('r');
    const e = azureError(() => signer.verify(input(url, { anyOfPermissions: 'w' })));
    expect(e.status).toBe(403);
    expect(e.code).toBe('AuthorizationPermissionMismatch');
    expect(() => signer.verify(input(sign('cw'), { anyOfPermissions: 'cw' }))).not.toThrow();
    expect(() => signer.verify(input(sign('c'), { anyOfPermissions: 'cw' }))).not.toThrow();
    expect(azureError(() => signer.verify(input(sign('c'), { anyOfPermissions: 'w' }))).code).toBe(
      'AuthorizationPermissionMismatch',
    );
    // Order: an expired read URL used to write is an authentication failure first.
    expect(
      azureError(() => signer.verify(input(url, { anyOfPermissions: 'w', now: NOW + 20 * MIN }))).code,
    ).toBe('AuthenticationFailed');
  });

  it('C-84: SAS from generateBlobSASQueryParameters (default and 2019 versions, extra fields) is accepted', () => {
    const credential = new StorageSharedKeyCredential(accountName, accountKey.toString('base64'));
    const variants = [
      {},
      { version: '2024-11-04' },
      { version: '2019-12-12' },
      {
        protocol: SASProtocol.HttpsAndHttp,
        cacheControl: 'no-cache',
        contentType: 'application/octet-stream',
      },
    ];
    for (const extra of variants) {
      const sas = generateBlobSASQueryParameters(
        {
          containerName,
          blobName: blobId,
          permissions: BlobSASPermissions.parse('rw'),
          startsOn: new Date(NOW - MIN),
          expiresOn: new Date(NOW + MIN),
          ...extra,
        },
        credential,
      ).toString();
      const url = new URL(`http://127.0.0.1:1/${accountName}/${containerName}/${blobId}?${sas}`);
      expect(signer.verify(input(url, { anyOfPermissions: 'w' })).permissions).toBe('rw');
    }
    // A different key is refused.
    const other = new StorageSharedKeyCredential(accountName, randomBytes(64).toString('base64'));
    const sas = generateBlobSASQueryParameters(
      {
        containerName,
        blobName: blobId,
        permissions: BlobSASPermissions.parse('r'),
        expiresOn: new Date(NOW + MIN),
      },
      other,
    ).toString();
    expect(azureError(() => signer.verify(input(new URL(`http://h:1/a/b/${blobId}?${sas}`)))).code).toBe(
      'AuthenticationFailed',
    );
  });
});
