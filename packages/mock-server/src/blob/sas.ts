import { createHmac, timingSafeEqual } from 'node:crypto';
import { azureErrors } from '../errors.js';

/** The service version the mock writes into the SAS it issues (`sv`). */
export const SAS_VERSION = '2024-11-04';

/** How far before "now" an issued SAS starts (`st`), to tolerate clock skew. */
const START_SKEW_MS = 5 * 60_000;

export interface SasSignerOptions {
  /** Storage account name: the first path segment of blob URLs and part of the string-to-sign. */
  readonly accountName: string;
  /** The account key (raw bytes; the SDKs take it base64-encoded). */
  readonly accountKey: Buffer;
}

/** What a request presents for verification. */
export interface SasVerifyInput {
  readonly containerName: string;
  /** The blob name as decoded from the request path. */
  readonly blobName: string;
  /** The request's query string (with or without `?`) or its parsed parameters; never compared raw. */
  readonly query: string | URLSearchParams;
  /** Unix ms at request start. */
  readonly now: number;
  /** SAS permission letters of which any one authorises the operation, e.g. `'r'`, `'w'`, `'cw'`. */
  readonly anyOfPermissions: string;
}

/** A SAS that passed every check. */
export interface VerifiedSas {
  /** `sv`. */
  readonly version: string;
  /** `sp`, as sent. */
  readonly permissions: string;
  /** `st` as Unix ms, when present. */
  readonly startsAt?: number;
  /** `se` as Unix ms. */
  readonly expiresAt: number;
}

export interface SasSigner {
  readonly accountName: string;
  /**
   * A signed blob URL: `<publicBaseUrl>/<account>/<container>/<blobId>?sv=…&st=…&se=…&sr=b&sp=…&sig=…`.
   * A path prefix in `publicBaseUrl` is kept. `st` = `now` − 5 min; `se`/`st` are whole UTC seconds.
   * @param permissions SAS letters, e.g. `'r'` (download) or `'cw'` (upload).
   * @param expiresAt Unix ms.
   * @param now Unix ms.
   */
  signBlobUrl(
    publicBaseUrl: string,
    containerName: string,
    blobId: string,
    permissions: string,
    expiresAt: number,
    now: number,
  ): string;
  /**
   * Checks a request's SAS in the order of docs/protocol.md §5.8: (1) well formed and signature matches,
   * else `AuthenticationFailed`; (2) `st ≤ now ≤ se`, else `AuthenticationFailed`; (3) one of
   * `anyOfPermissions` in `sp`, else `AuthorizationPermissionMismatch`. Throws `AzureError`.
   */
  verify(input: SasVerifyInput): VerifiedSas;
}

/** The last two seconds formatted (a signed URL has two dates, `st` and `se`). */
const formatted: [number, string][] = [
  [Number.NaN, ''],
  [Number.NaN, ''],
];

/** `YYYY-MM-DDThh:mm:ssZ` (whole seconds, UTC), the SAS date format. */
export function formatSasDate(ms: number): string {
  // URLs signed in the same second share their dates: format each second once.
  const second = Math.floor(ms / 1000);
  for (const [s, text] of formatted) if (s === second) return text;
  const text = `${new Date(ms).toISOString().slice(0, 19)}Z`;
  formatted.pop();
  formatted.unshift([second, text]);
  return text;
}

const SAS_DATE = /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,7}))?)?Z)?$/;

/** Parses the ISO 8601 UTC forms Azure accepts in `st`/`se`; `undefined` if malformed. */
export function parseSasDate(value: string): number | undefined {
  const m = SAS_DATE.exec(value);
  if (!m) return undefined;
  const [y, mo, d, h = '0', mi = '0', s = '0', frac = ''] = m.slice(1);
  const ms = Date.UTC(
    Number(y),
    Number(mo) - 1,
    Number(d),
    Number(h),
    Number(mi),
    Number(s),
    Math.floor(Number(`0.${frac || '0'}`) * 1000),
  );
  const t = new Date(ms);
  // Reject overflowing fields (2026-02-30, 25:00) instead of letting Date roll them over.
  if (
    Number.isNaN(ms) ||
    t.getUTCFullYear() !== Number(y) ||
    t.getUTCMonth() !== Number(mo) - 1 ||
    t.getUTCDate() !== Number(d) ||
    t.getUTCHours() !== Number(h) ||
    t.getUTCMinutes() !== Number(mi) ||
    t.getUTCSeconds() !== Number(s)
  ) {
    return undefined;
  }
  return ms;
}

/** The SAS fields that take part in the service-SAS string-to-sign. */
interface SasFields {
  sp: string;
  st: string;
  se: string;
  si: string;
  sip: string;
  spr: string;
  sv: string;
  sr: string;
  ses: string;
  rscc: string;
  rscd: string;
  rsce: string;
  rscl: string;
  rsct: string;
}

/**
 * Service-SAS string-to-sign for a blob (docs/protocol.md §5.8): 16 fields for `sv ≥ 2020-12-06`,
 * 15 (no `ses`) for `2018-11-09 ≤ sv < 2020-12-06`. `undefined` for older versions.
 */
export function blobStringToSign(
  f: SasFields,
  accountName: string,
  containerName: string,
  blobName: string,
): string | undefined {
  if (f.sv < '2018-11-09') return undefined;
  const snapshotTime = ''; // sr=b only: no snapshot or version resource
  const head = [
    f.sp,
    f.st,
    f.se,
    `/blob/${accountName}/${containerName}/${blobName}`,
    f.si,
    f.sip,
    f.spr,
    f.sv,
    f.sr,
    snapshotTime,
  ];
  const tail = [f.rscc, f.rscd, f.rsce, f.rscl, f.rsct];
  return (f.sv >= '2020-12-06' ? [...head, f.ses, ...tail] : [...head, ...tail]).join('\n');
}

/**
 * A query value form-encoded exactly as `URLSearchParams` encodes it. For the characters of SAS
 * dates, versions, permissions and base64 signatures that is `encodeURIComponent` (a few times
 * cheaper); anything else (`!'()~`, spaces) goes through `URLSearchParams` itself.
 */
export function formValue(value: string): string {
  if (/^[A-Za-z0-9+/=:.*_-]*$/.test(value)) return encodeURIComponent(value);
  return new URLSearchParams({ v: value }).toString().slice(2);
}

function hmac(key: Buffer, text: string): string {
  return createHmac('sha256', key).update(text, 'utf8').digest('base64');
}

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  // timingSafeEqual needs equal lengths; comparing x with itself keeps the time independent of y.
  return x.length === y.length ? timingSafeEqual(x, y) : !timingSafeEqual(x, x);
}

function toParams(query: string | URLSearchParams): URLSearchParams {
  if (typeof query !== 'string') return query;
  return new URLSearchParams(query.startsWith('?') ? query.slice(1) : query);
}

const utc = (ms: number | undefined) => (ms === undefined ? '' : new Date(ms).toUTCString());

/** Creates the signer/verifier of the mock's service SAS (HMAC-SHA256 with the account key). */
export function createSasSigner(options: SasSignerOptions): SasSigner {
  const { accountName } = options;
  if (!/^[a-z0-9]{3,24}$/.test(accountName)) {
    throw new TypeError(`invalid storage account name "${accountName}" (3-24 lowercase letters or digits)`);
  }
  if (options.accountKey.length === 0) throw new TypeError('accountKey must not be empty');
  const key = Buffer.from(options.accountKey);
  // `<publicBaseUrl path>/<account>/<container>/` resolved against the base URL as `new URL` does
  // (its query and fragment dropped), for the last base and container signed: one parse, not two
  // per URL (the base is fixed, or the Host of each request).
  let memo: { base: string; container: string; prefix: string } | undefined;
  const containerPrefix = (publicBaseUrl: string, containerName: string): string => {
    if (memo?.base === publicBaseUrl && memo.container === containerName) return memo.prefix;
    const base = new URL(publicBaseUrl);
    const dir = base.pathname.endsWith('/') ? base.pathname : `${base.pathname}/`;
    const path = `${encodeURIComponent(accountName)}/${encodeURIComponent(containerName)}/`;
    const prefix = new URL(`${dir}${path}`, base).href;
    memo = { base: publicBaseUrl, container: containerName, prefix };
    return prefix;
  };

  return {
    accountName,

    signBlobUrl(publicBaseUrl, containerName, blobId, permissions, expiresAt, now) {
      const prefix = containerPrefix(publicBaseUrl, containerName);
      const fields: SasFields = {
        sp: permissions,
        st: formatSasDate(now - START_SKEW_MS),
        se: formatSasDate(expiresAt),
        si: '',
        sip: '',
        spr: '',
        sv: SAS_VERSION,
        sr: 'b',
        ses: '',
        rscc: '',
        rscd: '',
        rsce: '',
        rscl: '',
        rsct: '',
      };
      const sig = hmac(key, blobStringToSign(fields, accountName, containerName, blobId)!);
      // Form-encoded as URLSearchParams does it (every reserved character: `:` `+` `/` `=`).
      const search = `sv=${formValue(fields.sv)}&st=${formValue(fields.st)}&se=${formValue(fields.se)}&sr=${formValue(fields.sr)}&sp=${formValue(fields.sp)}&sig=${formValue(sig)}`;
      const name = encodeURIComponent(blobId);
      // A dot segment resolves against the directory, as the URL parser does it.
      if (name === '.' || name === '..') return new URL(`${name}?${search}`, prefix).href;
      return `${prefix}${name}?${search}`;
    },

    verify({ containerName, blobName, query, now, anyOfPermissions }) {
      const params = toParams(query);
      const get = (name: keyof SasFields | 'sig') => params.get(name) ?? '';
      const fail = azureErrors.authenticationFailed;

      // (1) well formed, and the signature matches this exact blob.
      // Base64 has no spaces: a raw `+` decoded as form data comes back as one (GO, hand-built URLs).
      const sig = get('sig').replaceAll(' ', '+');
      if (sig === '') throw fail('sig is mandatory. Cannot be empty');
      const fields: SasFields = {
        sp: get('sp'),
        st: get('st'),
        se: get('se'),
        si: get('si'),
        sip: get('sip'),
        spr: get('spr'),
        sv: get('sv'),
        sr: get('sr'),
        ses: get('ses'),
        rscc: get('rscc'),
        rscd: get('rscd'),
        rsce: get('rsce'),
        rscl: get('rscl'),
        rsct: get('rsct'),
      };
      if (fields.sv === '') throw fail('sv is mandatory. Cannot be empty');
      if (fields.sr !== 'b') {
        throw fail(
          `The specified signed resource is not allowed for the this resource level: sr=${fields.sr}`,
        );
      }
      const stringToSign = blobStringToSign(fields, accountName, containerName, blobName);
      if (stringToSign === undefined) throw fail(`The signed version ${fields.sv} is not supported.`);
      if (!safeEqual(hmac(key, stringToSign), sig)) {
        throw fail(`Signature did not match. String to sign used was ${stringToSign}`);
      }
      if (fields.si !== '') throw fail('Stored access policies are not supported (si).');

      // (2) inside the time frame at request start.
      const startsAt = fields.st === '' ? undefined : parseSasDate(fields.st);
      const expiresAt = parseSasDate(fields.se);
      if ((fields.st !== '' && startsAt === undefined) || expiresAt === undefined) {
        throw fail(
          fields.se === '' ? 'Signed expiry field is mandatory.' : 'Signature fields not well formed.',
        );
      }
      if ((startsAt !== undefined && now < startsAt) || now > expiresAt) {
        throw fail(
          `Signature not valid in the specified time frame: Start [${utc(startsAt)}] - Expiry [${utc(expiresAt)}] - Current [${utc(now)}]`,
        );
      }

      // (3) the operation's permission letter.
      if (![...anyOfPermissions].some((letter) => fields.sp.includes(letter))) {
        throw azureErrors.permissionMismatch();
      }
      return startsAt === undefined
        ? { version: fields.sv, permissions: fields.sp, expiresAt }
        : { version: fields.sv, permissions: fields.sp, startsAt, expiresAt };
    },
  };
}
