/**
 * GitHub's cache policies as mock settings (docs/protocol.md §4.9–4.10). `null` turns a rule off.
 * Every field can be given at start (`AppOptions`, CLI flags) and changed at run time
 * (`app.mock.policies.update()`).
 */
export interface PolicySettings {
  /**
   * Storage quota per repository, in bytes: a Finalize that puts the repository over it is accepted,
   * then least-recently-used committed entries are evicted until the total fits (the new entry is
   * never evicted). Default 10 GB read as 10·10⁹ bytes (GitHub's docs say "10 GB" and do not say
   * which; `10GiB` on the CLI gives 10·2³⁰). `null` = unlimited.
   */
  readonly quotaBytes: number | null;
  /** Committed entries not accessed for this long are removed. Default 7 days. `null` = never. */
  readonly idleTtlMs: number | null;
  /**
   * Creates per repository in any sliding 60 s window; more answer 429 `resource_exhausted` with
   * `Retry-After`. Default 200 (GitHub's). `null` = unlimited.
   */
  readonly rateLimitPerMinute: number | null;
  /**
   * Hard-quota mode: every Create and Finalize answers 412 `failed_precondition`, msg containing
   * `insufficient usage` (what `@actions/cache` turns into its `UsageError`). Default false.
   */
  readonly quotaExhausted: boolean;
  /**
   * GitHub's eventual consistency: a committed entry is invisible to lookups for this long after its
   * Finalize (a lookup misses as if it were not there; a Create of the same identity still answers
   * 409 `already_exists`). Default 0 (visible at once).
   */
  readonly visibilityDelayMs: number;
}

const DAY_MS = 86_400_000;

export const DEFAULT_POLICY_SETTINGS: PolicySettings = Object.freeze({
  quotaBytes: 10 * 1000 ** 3,
  idleTtlMs: 7 * DAY_MS,
  rateLimitPerMinute: 200,
  quotaExhausted: false,
  visibilityDelayMs: 0,
});

/** A policy value that cannot be used; `field` names the setting. */
export class PolicySettingsError extends Error {
  override readonly name = 'PolicySettingsError';
  readonly code = 'invalid_policy';
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(message);
  }
}

type Check = (value: unknown) => boolean;
const nullOr =
  (check: Check): Check =>
  (value) =>
    value === null || check(value);
const integerAtLeast =
  (min: number): Check =>
  (value) =>
    typeof value === 'number' && Number.isSafeInteger(value) && value >= min;

const FIELDS: Record<keyof PolicySettings, { check: Check; expected: string }> = {
  quotaBytes: { check: nullOr(integerAtLeast(0)), expected: 'an integer number of bytes ≥ 0, or null' },
  idleTtlMs: { check: nullOr(integerAtLeast(1)), expected: 'an integer number of ms ≥ 1, or null' },
  rateLimitPerMinute: { check: nullOr(integerAtLeast(1)), expected: 'an integer ≥ 1, or null' },
  quotaExhausted: { check: (value) => typeof value === 'boolean', expected: 'a boolean' },
  visibilityDelayMs: { check: integerAtLeast(0), expected: 'an integer number of ms ≥ 0' },
};

/**
 * `base` with `patch` applied, every patched field checked; fields left `undefined` keep their
 * value. Throws `PolicySettingsError` on an unknown field or a bad value (nothing is applied).
 */
export function applyPolicyPatch(
  base: PolicySettings,
  patch: Readonly<Record<string, unknown>>,
): PolicySettings {
  const next: Record<string, unknown> = { ...base };
  for (const [field, value] of Object.entries(patch)) {
    if (value === undefined) continue;
    if (!Object.hasOwn(FIELDS, field)) {
      throw new PolicySettingsError(
        field,
        `unknown policy "${field}" (known: ${Object.keys(FIELDS).join(', ')})`,
      );
    }
    const { check, expected } = FIELDS[field as keyof PolicySettings];
    if (!check(value)) {
      throw new PolicySettingsError(
        field,
        `policy "${field}" must be ${expected} (got ${JSON.stringify(value)})`,
      );
    }
    next[field] = value;
  }
  return Object.freeze(next as unknown as PolicySettings);
}
