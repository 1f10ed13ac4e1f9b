/** The server's notion of time. Every timer-driven rule reads it, so tests can move time on purpose. */
export interface Clock {
  /** Unix ms. */
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

/**
 * The clock every policy of the mock runs on (`app.mock.clock`): a base clock plus an offset that only
 * grows. `advance(8 * 86_400_000)` makes "8 days later" a test step: the next lookup and the next sweep
 * apply idle expiry, reservation expiry, the rate-limit window and signed URL expiry as of the new time.
 * Runtime tokens are not affected: their `exp`/`nbf` are checked against real time, as clients do.
 */
export interface AdvanceableClock extends Clock {
  /** Moves simulated time forward by `ms` (a finite number ≥ 0); throws `RangeError` otherwise. */
  advance(ms: number): void;
  /** How far simulated time is ahead of the base clock, in ms (0 until the first `advance`). */
  readonly offsetMs: number;
}

/** An advanceable clock over `base` (default: the system clock). */
export function createAdvanceableClock(base: Clock = systemClock): AdvanceableClock {
  let offsetMs = 0;
  return {
    now: () => base.now() + offsetMs,
    advance(ms) {
      if (!Number.isFinite(ms) || ms < 0) {
        throw new RangeError(`the clock only moves forward by a finite number of ms (got ${ms})`);
      }
      offsetMs += ms;
    },
    get offsetMs() {
      return offsetMs;
    },
  };
}

/** A clock that starts at `startMs` (default: the real time) and moves only when told to. */
export interface ManualClock extends Clock {
  advance(ms: number): void;
  set(ms: number): void;
}

export function createManualClock(startMs: number = Date.now()): ManualClock {
  let t = startMs;
  return {
    now: () => t,
    advance: (ms) => {
      t += ms;
    },
    set: (ms) => {
      t = ms;
    },
  };
}
