/** `gha-cache-mock proxy`: records the traffic between cache clients and another cache service. */
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { type Command, Option } from 'commander';
import { buildProxyApp, parseUpstream } from '../proxy/index.js';
import { isLoopbackHost } from '../security/hosts.js';
import { logStream, parseCount, parsePort, shellQuote } from './options.js';

export function proxyCommand(program: Command): void {
  program
    .command('proxy')
    .description(
      'record the traffic between cache clients and another cache service (API v2): forwards every call, rewrites blob URLs to go through, prints the export lines',
    )
    .option('--upstream <url>', 'the service to forward to (default: $ACTIONS_RESULTS_URL)')
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--port <port>', 'port to listen on (0 = any free port)', parsePort, 8787)
    .addOption(
      new Option(
        '--blobs <mode>',
        'proxy: blob transfers go through the proxy too; direct: only Twirp calls do',
      )
        .choices(['proxy', 'direct'])
        .default('proxy'),
    )
    .option(
      '--public-url <url>',
      'base URL of the proxy in rewritten blob URLs (default: the Host each request came to)',
    )
    .option(
      '--token <token>',
      'also print this ACTIONS_RUNTIME_TOKEN in the export lines (the proxy itself never uses it)',
    )
    .option(
      '--save-entries <dir>',
      'also write every entry that goes through as a seed (gha-cache-mock serve --seed DIR)',
    )
    .option('--export-file <file>', 'also write the export lines to this file once ready')
    .addOption(
      new Option('--log-level <level>', 'request log level (logs go to stderr)')
        .choices(['info', 'warn', 'error', 'silent'])
        .default('info'),
    )
    .addOption(
      new Option(
        '--log-format <format>',
        'pretty or json (default: pretty on a terminal, else json)',
      ).choices(['pretty', 'json']),
    )
    .option('--traffic-log <file>', 'also append every request (traffic event) to this NDJSON file')
    .option('--traffic-ring <count>', 'requests kept in memory for /_admin/traffic', parseCount, 10_000)
    .option('--report-on-exit <file>', 'write the Markdown traffic report to this file when the proxy stops')
    .action(async (opts) => {
      const upstream = opts.upstream ?? process.env.ACTIONS_RESULTS_URL;
      if (!upstream) throw new Error('no upstream: pass --upstream <url> or set ACTIONS_RESULTS_URL');
      const base = parseUpstream(upstream);
      if (opts.saveEntries && opts.blobs === 'direct') {
        throw new Error('--save-entries needs the blobs to go through the proxy: drop --blobs direct');
      }
      const adminTokenGenerated = opts.adminToken === undefined && !isLoopbackHost(opts.host);
      const adminToken: string | undefined = adminTokenGenerated
        ? randomBytes(24).toString('base64url')
        : opts.adminToken;
      const app = await buildProxyApp({
        upstream: base.href,
        ...(adminToken !== undefined ? { adminToken } : {}),
        ...(opts.allowedHost ? { allowedHosts: opts.allowedHost } : {}),
        blobs: opts.blobs,
        ...(opts.publicUrl ? { publicUrl: opts.publicUrl } : {}),
        ...(opts.saveEntries ? { saveEntriesDir: resolve(opts.saveEntries) } : {}),
        logger: { level: opts.logLevel, stream: logStream(opts.logFormat) },
        ...(opts.trafficLog ? { trafficLog: resolve(opts.trafficLog) } : {}),
        trafficRingSize: opts.trafficRing,
        processMetrics: true,
      });
      try {
        await app.listen({ host: opts.host, port: opts.port });
      } catch (err) {
        await app.close();
        throw err;
      }
      const address = app.server.address();
      if (address === null || typeof address === 'string') throw new Error('proxy is not listening on TCP');
      const host =
        address.address === '0.0.0.0' || address.address === '::'
          ? '127.0.0.1'
          : address.family === 'IPv6'
            ? `[${address.address}]`
            : address.address;
      const url = `http://${host}:${address.port}`;
      let closing = false;
      const shutdown = (signal: string) => {
        if (closing) return;
        closing = true;
        process.stderr.write(`gha-cache-mock proxy: ${signal}, closing\n`);
        const report: Promise<unknown> = opts.reportOnExit
          ? app.proxy
              .report()
              .then((markdown) => writeFile(opts.reportOnExit, markdown))
              .catch((err: unknown) =>
                process.stderr.write(`gha-cache-mock proxy: report not written: ${String(err)}\n`),
              )
          : Promise.resolve();
        report
          .then(() => app.close())
          .then(
            () => process.exit(0),
            (err: unknown) => {
              process.stderr.write(`gha-cache-mock proxy: close failed: ${String(err)}\n`);
              process.exit(1);
            },
          );
      };
      process.on('SIGTERM', () => shutdown('SIGTERM'));
      process.on('SIGINT', () => shutdown('SIGINT'));
      const env: Record<string, string> = {
        ACTIONS_RESULTS_URL: `${url}/`,
        ACTIONS_CACHE_URL: `${url}/`,
        ...(opts.token !== undefined ? { ACTIONS_RUNTIME_TOKEN: opts.token } : {}),
        ACTIONS_CACHE_SERVICE_V2: 'true',
      };
      const lines = Object.entries(env).map(([k, v]) => `export ${k}=${shellQuote(v)}`);
      if (opts.exportFile) await writeFile(opts.exportFile, `${lines.join('\n')}\n`, { mode: 0o600 });
      process.stderr.write(
        `gha-cache-mock proxy listening on ${url}, forwarding to ${base.origin}${base.pathname === '/' ? '' : base.pathname} (blobs: ${opts.blobs})\n`,
      );
      process.stderr.write(
        `gha-cache-mock proxy: traffic at ${url}/_admin/traffic, report at ${url}/_admin/report\n`,
      );
      if (opts.saveEntries)
        process.stderr.write(`gha-cache-mock proxy: saving entries to ${resolve(opts.saveEntries)}\n`);
      // Last: the export lines on stdout are the signal that everything above is ready.
      process.stdout.write(`${lines.join('\n')}\n`);
    });
}
