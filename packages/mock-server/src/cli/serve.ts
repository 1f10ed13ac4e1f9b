/** `gha-cache-mock serve`: starts the mock and prints the export lines cache clients need. */
import { writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { DEFAULT_CONNECTION_TIMEOUTS } from '../connections.js';
import { type FaultRuleInput, parseFaultSpec } from '../faults/index.js';
import { loadTwirpMethods } from '../plugins/twirp.js';
import { parseRepositorySpec, type Repository } from '../repositories.js';
import { createHostAllowList } from '../security/hosts.js';
import { loadSeedManifest } from '../seed.js';
import { startMockServer } from '../server.js';
import {
  collectScope,
  defaultDataDir,
  logStream,
  parseCount,
  parseDuration,
  parsePort,
  secretsFor,
  shellQuote,
} from './options.js';

const collectRepository = (value: string, previous: Repository[] = []): Repository[] => {
  try {
    return [...previous, parseRepositorySpec(value, '1')];
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
};

const collectPath = (value: string, previous: string[] = []): string[] => [...previous, value];

const collectHost = (value: string, previous: string[] = []): string[] => {
  try {
    createHostAllowList({ names: [value] });
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
  return [...previous, value];
};

const collectFault = (value: string, previous: FaultRuleInput[] = []): FaultRuleInput[] => {
  try {
    return [...previous, parseFaultSpec(value)];
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
};

const BYTE_UNITS: Readonly<Record<string, number>> = {
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  kib: 2 ** 10,
  mib: 2 ** 20,
  gib: 2 ** 30,
  tib: 2 ** 40,
};

/** `10GB` (10·10⁹), `10GiB` (10·2³⁰), `500MB`, `1048576` (bytes). */
function parseBytes(value: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]i?b|b)?$/i.exec(value.trim());
  if (!m) throw new InvalidArgumentError(`invalid size "${value}" (e.g. 10GB, 512MiB, 1048576)`);
  return Math.round(Number(m[1]) * BYTE_UNITS[(m[2] ?? 'b').toLowerCase()]!);
}

/** A policy value, or `'off'` (commander turns a parser's `null` into `''`; `offToNull` maps it after). */
const orOff =
  <T>(parse: (value: string) => T) =>
  (value: string): T | 'off' =>
    value.trim().toLowerCase() === 'off' ? 'off' : parse(value);
const offToNull = <T>(value: T | 'off'): T | null => (value === 'off' ? null : value);

function azureConnectionString(flag: string | undefined): string {
  const value = flag ?? process.env.AZURE_STORAGE_CONNECTION_STRING;
  if (!value) {
    throw new Error('--blob-store azure needs --azure-connection-string or AZURE_STORAGE_CONNECTION_STRING');
  }
  return value;
}

/** A database URL without its password, for logs. */
function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(unparsable URL)';
  }
}

export function serveCommand(program: Command): void {
  program
    .command('serve', { isDefault: true })
    .description('start the server and print the export lines cache clients need')
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--port <port>', 'port to listen on (0 = any free port)', parsePort, 8787)
    .option('--data-dir <dir>', `where entries, blobs and secrets live (default: ${defaultDataDir()})`)
    .addOption(new Option('--storage <kind>', 'storage backend').choices(['fs', 'memory']).default('fs'))
    .option(
      '--database <url>',
      'PostgreSQL URL for the entries, shared by every instance (default: $DATABASE_URL, else SQLite in the data dir)',
    )
    .option('--database-timeout <duration>', 'bound of every wait on the database', parseDuration, 5000)
    .addOption(
      new Option('--blob-store <kind>', 'where blob content lives (default: files in the data dir)').choices([
        'files',
        'memory',
        'azure',
      ]),
    )
    .option(
      '--azure-connection-string <string>',
      'Azure Storage account of --blob-store azure (default: $AZURE_STORAGE_CONNECTION_STRING)',
    )
    .option(
      '--azure-container <name>',
      'container of --blob-store azure, created if missing',
      'actions-cache',
    )
    .option(
      '--token-secret <secret>',
      'HS256 secret for runtime tokens (default: generated, kept in the data dir)',
    )
    .option('--insecure-tokens', 'accept tokens not signed by this server (signature not checked)', false)
    .option(
      '--public-url <url>',
      'base URL used in signed blob URLs (default: the Host each request came to)',
    )
    .option('--path-prefix <prefix>', 'also serve the Twirp API under this path prefix')
    .option(
      '--scope <ref:perm>',
      'scope of the printed token, repeatable (default refs/heads/main:rw)',
      collectScope,
    )
    .option('--token-ttl <duration>', 'lifetime of the printed token', parseDuration, 6 * 3_600_000)
    .option('--upload-url-ttl <duration>', 'lifetime of signed upload URLs', parseDuration, 60 * 60_000)
    .option('--download-url-ttl <duration>', 'lifetime of signed download URLs', parseDuration, 10 * 60_000)
    .option(
      '--pending-ttl <duration>',
      'time before an unfinalized reservation expires',
      parseDuration,
      60 * 60_000,
    )
    .option(
      '--quota <size|off>',
      'storage quota per repository, LRU eviction over it (default: 10GB)',
      orOff(parseBytes),
    )
    .option(
      '--idle-ttl <duration|off>',
      'remove entries not accessed for this long (default: 7d)',
      orOff(parseDuration),
    )
    .option(
      '--rate-limit <count|off>',
      'Creates per repository per minute, then 429 (default: 200)',
      orOff(parseCount),
    )
    .option(
      '--quota-exhausted',
      'hard-quota mode: Create and Finalize answer 412 "insufficient usage"',
      false,
    )
    .option(
      '--visibility-delay <duration>',
      "hide a committed entry from lookups for this long after its Finalize, as GitHub's eventual consistency does (default: 0, off)",
      parseDuration,
    )
    .option(
      '--clock-offset <duration>',
      'start with simulated time this far ahead of real time',
      parseDuration,
      0,
    )
    .option(
      '--fault <spec>',
      'fault rule, repeatable, e.g. op=CreateCacheEntry,status=429,retry-after=3,times=2 or JSON (README "Faults")',
      collectFault,
    )
    .option(
      '--repository <owner/name[=id]>',
      'repository of the REST API, repeatable; without =id it names the default repository (id 1)',
      collectRepository,
    )
    .option('--rest-token <token>', 'the only token the REST API accepts (default: any bearer token)')
    .addOption(
      new Option(
        '--admin-token <token>',
        'bearer token the admin API, UI and /metrics require (default: none on loopback, generated otherwise)',
      ).env('GHA_CACHE_ADMIN_TOKEN'),
    )
    .option(
      '--allowed-host <name>',
      'another Host name the admin API, UI, metrics and REST API answer to, repeatable (.example.com: and subdomains)',
      collectHost,
    )
    .option(
      '--seed <manifest|dir>',
      'preload entries from a seed manifest (or a directory with manifest.json), repeatable',
      collectPath,
    )
    .option(
      '--export-file <file>',
      'also write the export lines to this file once ready (not --env-file: Node 20 claims that flag)',
    )
    .option(
      '--shutdown-grace <duration>',
      'on SIGTERM/SIGINT, let requests in flight finish for this long before closing',
      parseDuration,
      10_000,
    )
    .option(
      '--headers-timeout <duration>',
      'most time a client may take to send request headers (then 408)',
      parseDuration,
      DEFAULT_CONNECTION_TIMEOUTS.headersTimeoutMs,
    )
    .option(
      '--keep-alive-timeout <duration>',
      'close an idle keep-alive connection after this long',
      parseDuration,
      DEFAULT_CONNECTION_TIMEOUTS.keepAliveTimeoutMs,
    )
    .option(
      '--stall-timeout <duration>',
      'drop a request whose connection moves no byte for this long (0 = never)',
      parseDuration,
      DEFAULT_CONNECTION_TIMEOUTS.stallTimeoutMs,
    )
    .addOption(
      new Option('--log-level <level>', 'request log level (logs go to stderr)')
        .choices(['info', 'warn', 'error', 'silent'])
        .default('info'),
    )
    .addOption(
      new Option(
        '--log-format <format>',
        'pretty: one aligned, coloured line per request; json: one JSON object per line (default: pretty on a terminal, else json)',
      ).choices(['pretty', 'json']),
    )
    .option('--traffic-log <file>', 'also append every request (traffic event) to this NDJSON file')
    .option(
      '--traffic-ring <count>',
      'requests kept in memory for /_admin/traffic and the UI',
      parseCount,
      10_000,
    )
    .option('--report-on-exit <file>', 'write the Markdown traffic report to this file when the server stops')
    .action(async (opts) => {
      const seeds = (
        await Promise.all(((opts.seed ?? []) as string[]).map((p) => loadSeedManifest(p)))
      ).flat();
      const { dataDir, tokenSecret, accountKey } = await secretsFor(opts);
      const database: string | undefined = opts.database ?? (process.env.DATABASE_URL || undefined);
      const mock = await startMockServer({
        ...(database !== undefined ? { database, databaseTimeoutMs: opts.databaseTimeout } : {}),
        ...(opts.blobStore !== undefined ? { blobStore: opts.blobStore } : {}),
        ...(opts.blobStore === 'azure'
          ? {
              azure: {
                connectionString: azureConnectionString(opts.azureConnectionString),
                container: opts.azureContainer,
              },
            }
          : {}),
        host: opts.host,
        port: opts.port,
        storage: opts.storage,
        ...(opts.storage === 'fs' ? { dataDir: resolve(dataDir) } : {}),
        ...(tokenSecret ? { tokenSecret } : {}),
        ...(accountKey ? { accountKey } : {}),
        insecureTokens: opts.insecureTokens,
        ...(opts.publicUrl ? { publicUrl: opts.publicUrl } : {}),
        ...(opts.pathPrefix ? { pathPrefix: opts.pathPrefix } : {}),
        ...(opts.scope ? { scopes: opts.scope } : {}),
        uploadUrlTtlMs: opts.uploadUrlTtl,
        downloadUrlTtlMs: opts.downloadUrlTtl,
        pendingTtlMs: opts.pendingTtl,
        ...(opts.quota !== undefined ? { quotaBytes: offToNull(opts.quota) } : {}),
        ...(opts.idleTtl !== undefined ? { idleTtlMs: offToNull(opts.idleTtl) } : {}),
        ...(opts.rateLimit !== undefined ? { rateLimitPerMinute: offToNull(opts.rateLimit) } : {}),
        quotaExhausted: opts.quotaExhausted,
        ...(opts.visibilityDelay !== undefined ? { visibilityDelayMs: opts.visibilityDelay } : {}),
        shutdownGraceMs: opts.shutdownGrace,
        timeouts: {
          headersTimeoutMs: opts.headersTimeout,
          keepAliveTimeoutMs: opts.keepAliveTimeout,
          stallTimeoutMs: opts.stallTimeout,
        },
        ...(opts.fault ? { faults: opts.fault } : {}),
        ...(opts.repository
          ? {
              repositories: Object.fromEntries(
                (opts.repository as Repository[]).map((r) => [r.fullName, r.id]),
              ),
            }
          : {}),
        ...(opts.restToken !== undefined ? { restToken: opts.restToken } : {}),
        // An empty GHA_CACHE_ADMIN_TOKEN counts as not set.
        ...(opts.adminToken ? { adminToken: opts.adminToken } : {}),
        ...(opts.allowedHost ? { allowedHosts: opts.allowedHost } : {}),
        logger: { level: opts.logLevel, stream: logStream(opts.logFormat) },
        ...(opts.trafficLog ? { trafficLog: resolve(opts.trafficLog) } : {}),
        trafficRingSize: opts.trafficRing,
        processMetrics: true,
      });
      let seeded = 0;
      for (const input of seeds) {
        // A persistent data dir keeps earlier seeds: present entries are left as they are.
        if ((await mock.seed({ ...input, onConflict: 'skip' })).created) seeded++;
      }
      if (seeds.length > 0) {
        process.stderr.write(
          `gha-cache-mock: seeded ${seeded} entries (${seeds.length - seeded} already present)\n`,
        );
      }
      mock.app.mock.clock.advance(opts.clockOffset);
      const token = mock.mintToken(opts.scope, { ttlMs: opts.tokenTtl });
      const env = { ...mock.env, ACTIONS_RUNTIME_TOKEN: token };
      let signals = 0;
      const shutdown = (signal: string) => {
        if (++signals > 1) {
          // A second signal: no more waiting for requests in flight.
          process.stderr.write(`gha-cache-mock: ${signal} again, closing now\n`);
          mock.app.server.closeAllConnections();
          return;
        }
        const inFlight = mock.inFlight;
        process.stderr.write(
          `gha-cache-mock: ${signal}, closing` +
            (inFlight > 0
              ? ` after ${inFlight} request(s) in flight finish (at most ${opts.shutdownGrace} ms)`
              : '') +
            '\n',
        );
        const report: Promise<unknown> = opts.reportOnExit
          ? mock.app.mock
              .report()
              .then((markdown) => writeFile(opts.reportOnExit, markdown))
              .catch((err: unknown) =>
                process.stderr.write(`gha-cache-mock: report not written: ${String(err)}\n`),
              )
          : Promise.resolve();
        report
          .then(() => mock.close())
          .then(
            ({ unfinished }) => {
              if (unfinished > 0)
                process.stderr.write(
                  `gha-cache-mock: cut ${unfinished} request(s) still running after the grace period\n`,
                );
              process.stderr.write('gha-cache-mock: closed\n');
              process.exit(0);
            },
            (err: unknown) => {
              process.stderr.write(`gha-cache-mock: close failed: ${String(err)}\n`);
              process.exit(1);
            },
          );
      };
      process.on('SIGTERM', () => shutdown('SIGTERM'));
      process.on('SIGINT', () => shutdown('SIGINT'));
      const lines = Object.entries(env).map(([k, v]) => `export ${k}=${shellQuote(v)}`);
      if (opts.exportFile) await writeFile(opts.exportFile, `${lines.join('\n')}\n`);
      process.stderr.write(
        `gha-cache-mock listening on ${mock.url} (storage: ${mock.storage.kind}${opts.storage === 'fs' ? ` in ${resolve(dataDir)}` : ''}${database !== undefined ? `, database ${redactUrl(database)}` : ''})\n`,
      );
      process.stderr.write(
        `gha-cache-mock: web UI at ${mock.url}/_ui/ (traffic, entries, BuildKit, summary)\n`,
      );
      for (const limit of mock.storage.blobs.direct?.limitations ?? []) {
        process.stderr.write(`gha-cache-mock: with --blob-store azure, ${limit}\n`);
      }
      for (const rule of mock.faults.list()) {
        process.stderr.write(`gha-cache-mock: fault rule ${rule.id}: ${JSON.stringify(rule)}\n`);
      }
      if (mock.adminTokenGenerated) {
        // Shown once, here only: it is in no export line, file or log.
        process.stderr.write(
          `gha-cache-mock: listening beyond loopback, so the admin API, UI and /metrics need this generated token\n` +
            `  (send "Authorization: Bearer <token>"; fix one with --admin-token or GHA_CACHE_ADMIN_TOKEN):\n` +
            `gha-cache-mock: admin token ${mock.adminToken}\n`,
        );
      } else if (mock.adminToken !== undefined) {
        process.stderr.write(
          'gha-cache-mock: the admin API, UI and /metrics require the given admin token\n',
        );
      }
      // Last: the export lines on stdout are the signal that everything above is ready.
      process.stdout.write(`${lines.join('\n')}\n`);
      // The protobuf side of the Twirp API, loaded now rather than by the first call (which waits for it).
      loadTwirpMethods().catch(() => undefined);
    });
}
