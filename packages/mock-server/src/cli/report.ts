/** `gha-cache-mock report`: the Markdown traffic report, from a running mock or a traffic log. */
import { readFile } from 'node:fs/promises';
import { type Command, Option } from 'commander';
import type { TrafficEvent } from '../journal/types.js';
import { renderReport } from '../report/markdown.js';
import { summarize } from '../report/summary.js';

export function reportCommand(program: Command): void {
  program
    .command('report')
    .description('print the Markdown summary of the traffic (for $GITHUB_STEP_SUMMARY)')
    .option('--url <url>', 'a running mock (default http://127.0.0.1:8787)')
    .option('--traffic-log <file>', 'read this traffic log (NDJSON) instead of asking a running mock')
    .addOption(
      new Option('--admin-token <token>', 'admin token of the running mock, if it requires one').env(
        'GHA_CACHE_ADMIN_TOKEN',
      ),
    )
    .action(async (opts) => {
      if (opts.trafficLog) {
        const events = (await readFile(opts.trafficLog, 'utf8'))
          .split('\n')
          .filter((line) => line.trim() !== '')
          .flatMap((line) => {
            try {
              return [JSON.parse(line) as TrafficEvent];
            } catch {
              return [];
            }
          });
        process.stdout.write(renderReport({ summary: summarize(events) }));
        return;
      }
      const base = (opts.url ?? 'http://127.0.0.1:8787').replace(/\/+$/, '');
      const res = await fetch(`${base}/_admin/report`, {
        headers: opts.adminToken ? { authorization: `Bearer ${opts.adminToken}` } : {},
      }).catch((err: unknown) => {
        throw new Error(`cannot reach ${base}: ${(err as Error).message}`);
      });
      const body = await res.text();
      if (!res.ok) throw new Error(`${base}/_admin/report answered ${res.status}: ${body.slice(0, 500)}`);
      process.stdout.write(body);
    });
}
