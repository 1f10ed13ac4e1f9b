/** `gha-cache-mock verify`: checks (and with --repair mends) a data directory offline. */
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { acquireDataDirLock } from '../data-dir-lock.js';
import { DatabaseDamagedError, type VerifyReport, verifyDataDir } from '../storage/verify.js';
import { defaultDataDir } from './options.js';

export function verifyCommand(program: Command): void {
  program
    .command('verify')
    .description(
      'check a data directory offline: database integrity, every committed blob present, nothing orphaned',
    )
    .option('--data-dir <dir>', `the data directory (default: ${defaultDataDir()})`)
    .option('--repair', 'drop committed entries that cannot be served and remove orphaned files', false)
    .option('--json', 'print the report as JSON', false)
    .action(async (opts) => {
      const dataDir = resolve(opts.dataDir ?? defaultDataDir());
      // Offline only: a live server holding the directory refuses this as it refuses a second server.
      const lock = await acquireDataDirLock(dataDir);
      let report: VerifyReport;
      try {
        report = await verifyDataDir(dataDir, { repair: opts.repair });
      } catch (err) {
        await lock.release();
        if (err instanceof DatabaseDamagedError) {
          process.stderr.write(`gha-cache-mock verify: ${err.message}\n`);
          process.exit(2);
        }
        throw err;
      }
      await lock.release();
      if (opts.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      else {
        const lines = [
          `data dir ${report.dataDir}`,
          `database: ${report.database}`,
          `entries: ${report.entries} (${report.committed} committed)`,
          ...report.findings.map((f) => `${f.kind}: ${f.detail}`),
          report.findings.length === 0
            ? 'no problems found'
            : opts.repair
              ? `repaired ${report.repaired} of ${report.findings.length} problems`
              : `${report.findings.length} problems (run with --repair to remove what cannot be served)`,
        ];
        process.stdout.write(`${lines.join('\n')}\n`);
      }
      process.exit(report.findings.length > 0 && !opts.repair ? 1 : 0);
    });
}
