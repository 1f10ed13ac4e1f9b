// CPU time of benchmark processes, from /proc (Linux).
import { readFileSync } from 'node:fs';

/** User + system CPU seconds `pid` has used so far. */
export function cpuSecondsOf(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in USER_HZ (100)
}

/**
 * Waits (at most `maxMs`) until the processes together use < 5% of a CPU over 500 ms, so that no run
 * inherits another's deferred work (e.g. Azurite collecting deleted blobs seconds later).
 */
export async function waitForIdle(pids, maxMs = 30_000) {
  const total = () => pids.reduce((sum, pid) => sum + cpuSecondsOf(pid), 0);
  const deadline = performance.now() + maxMs;
  for (let before = total(); performance.now() < deadline; ) {
    await new Promise((r) => setTimeout(r, 500));
    const now = total();
    if (now - before < 0.025) return;
    before = now;
  }
}
