// What the benches share: sizes from the command line, medians, and a process's memory and CPU.
import { readFileSync } from 'node:fs';
import { cpuSecondsOf } from './cpu.mjs';

/** `512K`, `64M`, `1G`, `1.5G` or plain bytes → bytes (binary units). */
export function parseSize(s) {
  const m = /^(\d+(?:\.\d+)?)([KMG]?)$/i.exec(s);
  if (!m) throw new Error(`bad size ${s}`);
  return Math.round(Number(m[1]) * { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[m[2].toUpperCase()]);
}

/** The median (the mean of the two middle values for an even count). */
export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/** VmRSS and VmHWM of a process in bytes. */
export function memoryOf(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (name) =>
    Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? Number.NaN) * 1024;
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
}

/**
 * Samples VmRSS of `pid` every 50 ms while `work` runs; returns its result, the peak sample and
 * the CPU seconds the process used meanwhile (less sensitive to other load than wall time).
 */
export async function withRssPolling(pid, work) {
  let peak = memoryOf(pid).rss;
  const cpu0 = cpuSecondsOf(pid);
  const timer = setInterval(() => {
    try {
      peak = Math.max(peak, memoryOf(pid).rss);
    } catch {}
  }, 50);
  try {
    const result = await work();
    peak = Math.max(peak, memoryOf(pid).rss);
    return { result, peakRss: peak, cpuSeconds: cpuSecondsOf(pid) - cpu0 };
  } finally {
    clearInterval(timer);
  }
}
