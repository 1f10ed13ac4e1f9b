/** Types of `soak.mjs` (a plain script so that `node test/soak/soak.mjs` runs it without a build). */
export interface SoakSample {
  /** Seconds since the start. */
  t: number;
  rssMiB: number;
  fds: number;
}

export interface SoakReport {
  durationS: number;
  warmupS: number;
  /** Every request the workload made (Twirp, blob, REST, admin, @actions/cache operations). */
  requests: number;
  counts: Record<string, number>;
  mibUp: number;
  mibDown: number;
  /** Requests a client retried after a 429/5xx (the injected faults). */
  clientRetries: number;
  rss: { atWarmupMiB: number; peakAfterMiB: number | undefined };
  fds: { atWarmup: number; peakAfter: number | undefined };
  samples: SoakSample[];
  /** Every end check that did not hold; empty when the soak passed. */
  failures: string[];
}

export interface SoakOptions {
  /** Default 15 minutes. */
  durationMs?: number;
  /** Default a fifth of the duration, at most 3 minutes. */
  warmupMs?: number;
  /** Progress lines. Default: stderr. */
  log?: (line: string) => void;
}

export function runSoak(options?: SoakOptions): Promise<SoakReport>;
/** Incompressible, reproducible content of `size` bytes for `seed`. */
export function contentFor(seed: string, size: number): Buffer;
