import type { TransferProgress } from '../blob/progress.js';
import { formatBytes } from './format.js';

export interface ProgressReporter {
  update(p: TransferProgress): void;
  done(): void;
}

/**
 * A progress bar redrawn at most 10×/s on a TTY; otherwise one plain line every `intervalMs`.
 * Always written to stderr.
 */
export function createProgressReporter(
  out: NodeJS.WritableStream & { isTTY?: boolean; columns?: number },
  intervalMs = 5000,
): ProgressReporter {
  const tty = out.isTTY === true;
  const started = Date.now();
  // Plain output waits a full interval before its first line; a TTY bar draws at once.
  let last = tty ? 0 : started;
  let latest: TransferProgress | undefined;
  let drawn = false;
  const line = (p: TransferProgress) => {
    const secs = Math.max(0.001, (Date.now() - started) / 1000);
    const rate = `${formatBytes(p.transferredBytes / secs)}/s`;
    if (p.totalBytes && p.totalBytes > 0) {
      const pct = Math.min(100, (100 * p.transferredBytes) / p.totalBytes);
      return {
        pct,
        text: `${p.phase} ${formatBytes(p.transferredBytes)} / ${formatBytes(p.totalBytes)} (${pct.toFixed(0)}%) ${rate}`,
      };
    }
    return { pct: undefined, text: `${p.phase} ${formatBytes(p.transferredBytes)} ${rate}` };
  };
  const draw = (p: TransferProgress) => {
    const { pct, text } = line(p);
    if (tty) {
      const width = 24;
      const bar =
        pct === undefined ? '' : `[${'#'.repeat(Math.round((pct / 100) * width)).padEnd(width, '-')}] `;
      out.write(`\r\x1b[2K${bar}${text}`);
      drawn = true;
    } else {
      out.write(`${text}\n`);
    }
  };
  return {
    update(p) {
      latest = p;
      const now = Date.now();
      if (now - last >= (tty ? 100 : intervalMs)) {
        last = now;
        draw(p);
      }
    },
    done() {
      if (latest && (tty || Date.now() - started >= intervalMs)) draw(latest);
      if (tty && drawn) out.write('\n');
    },
  };
}
