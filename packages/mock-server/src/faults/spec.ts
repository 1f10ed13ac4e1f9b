import { normalizeFaultRule } from './engine.js';
import { type FaultAction, type FaultOp, type FaultRuleInput, FaultSpecError } from './types.js';

/**
 * Parses the compact `--fault` syntax, e.g. `op=CreateCacheEntry,status=429,retry-after=3,times=2`, or a
 * JSON {@link FaultRuleInput} (anything starting with `{`). Comma-separated `name=value` pairs; exactly one
 * action name (`status`, `latency`, `throttle`, `drop`, `truncate`, `non-json`, `expire-url`). See the
 * mock-server README, "Faults". Throws {@link FaultSpecError} (code `ERR_FAULT_SPEC`) on anything invalid.
 */
export function parseFaultSpec(spec: string): FaultRuleInput {
  const trimmed = spec.trim();
  const bad = (why: string): never => {
    throw new FaultSpecError('ERR_FAULT_SPEC', `invalid fault "${spec}": ${why}`);
  };
  let rule: FaultRuleInput;
  if (trimmed.startsWith('{')) {
    try {
      rule = JSON.parse(trimmed) as FaultRuleInput;
    } catch (err) {
      return bad(`not valid JSON (${(err as Error).message})`);
    }
  } else {
    rule = parsePairs(trimmed, bad);
  }
  try {
    normalizeFaultRule(rule, 'check'); // validate now, so that a CLI error names the flag
  } catch (err) {
    if (err instanceof FaultSpecError) bad(err.message);
    throw err;
  }
  return rule;
}

const ACTION_NAMES = ['status', 'latency', 'throttle', 'drop', 'truncate', 'non-json', 'expire-url'] as const;
type ActionName = (typeof ACTION_NAMES)[number];

/** Which extra names each action takes (beyond the match names). */
const ACTION_OPTIONS: Readonly<Record<ActionName, readonly string[]>> = {
  status: ['code', 'msg', 'message', 'retry-after', 'retry-after-ms'],
  latency: [],
  throttle: ['direction'],
  drop: ['direction'],
  truncate: [],
  'non-json': ['content-type', 'body'],
  'expire-url': [],
};
const MATCH_NAMES = ['id', 'op', 'rpc', 'blob', 'key', 'after', 'nth', 'times', 'probability', 'p', 'seed'];

const SIZE = /^(\d+)(k|kb|kib|m|mb|mib|g|gb|gib)?(?:\/s)?$/i;
const SIZE_UNITS: Readonly<Record<string, number>> = { k: 1024, m: 1024 ** 2, g: 1024 ** 3 };
const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m)?$/;
const DURATION_UNITS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000 };

function parsePairs(spec: string, bad: (why: string) => never): FaultRuleInput {
  const pairs = new Map<string, string | undefined>();
  for (const part of spec.split(',')) {
    const item = part.trim();
    if (item === '') continue;
    const eq = item.indexOf('=');
    const name = (eq < 0 ? item : item.slice(0, eq)).trim().toLowerCase();
    const value = eq < 0 ? undefined : item.slice(eq + 1).trim();
    if (pairs.has(name)) bad(`"${name}" given twice`);
    pairs.set(name, value);
  }
  const actions = ACTION_NAMES.filter((n) => pairs.has(n));
  if (actions.length !== 1) {
    bad(
      actions.length === 0
        ? `no action (one of ${ACTION_NAMES.join(', ')})`
        : `one action per rule, got ${actions.join(' and ')} (add one rule each)`,
    );
  }
  const name = actions[0]!;
  const allowed = new Set([...MATCH_NAMES, name, ...ACTION_OPTIONS[name]]);
  const unknown = [...pairs.keys()].filter((k) => !allowed.has(k));
  if (unknown.length > 0) bad(`unknown name(s) ${unknown.join(', ')} for action "${name}"`);

  const required = (n: string): string => pairs.get(n) ?? bad(`"${n}" needs a value`);
  const int = (n: string): number => {
    const v = required(n);
    if (!/^\d+$/.test(v)) bad(`"${n}" must be a whole number, got "${v}"`);
    return Number(v);
  };
  const size = (n: string): number => {
    const m = SIZE.exec(required(n));
    if (!m) return bad(`"${n}" must be a byte count like 1024, 64k or 1m, got "${pairs.get(n)}"`);
    return Number(m[1]) * (SIZE_UNITS[(m[2] ?? '').charAt(0).toLowerCase()] ?? 1);
  };
  const optional = <T>(n: string, read: (n: string) => T): T | undefined =>
    pairs.has(n) ? read(n) : undefined;

  const ops = ['op', 'rpc', 'blob'].filter((n) => pairs.has(n)).flatMap((n) => required(n).split('|'));
  const probability = optional('probability', required) ?? optional('p', required);
  if (probability !== undefined && !/^(0|1|0?\.\d+|1\.0*)$/.test(probability)) {
    bad(`probability must be a number in [0, 1], got "${probability}"`);
  }
  const action = ((): FaultAction => {
    switch (name) {
      case 'status': {
        const code = pairs.get('code');
        const message = pairs.get('msg') ?? pairs.get('message');
        const retryAfterSeconds = optional('retry-after', int);
        const retryAfterMs = optional('retry-after-ms', int);
        return {
          type: 'status',
          status: int('status'),
          ...(code !== undefined ? { code } : {}),
          ...(message !== undefined ? { message } : {}),
          ...(retryAfterSeconds !== undefined ? { retryAfterSeconds } : {}),
          ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
        };
      }
      case 'latency': {
        const m = DURATION.exec(required('latency'));
        if (!m)
          return bad(`latency must be a duration like 250, 250ms, 2s or 1m, got "${pairs.get('latency')}"`);
        return { type: 'latency', ms: Math.round(Number(m[1]) * DURATION_UNITS[m[2] ?? 'ms']!) };
      }
      case 'throttle':
      case 'drop': {
        const direction = pairs.get('direction');
        const amount = size(name);
        const dir = direction !== undefined ? { direction: direction as 'request' | 'response' } : {};
        return name === 'throttle'
          ? { type: 'throttle', bytesPerSecond: amount, ...dir }
          : { type: 'drop', afterBytes: amount, ...dir };
      }
      case 'truncate':
        return { type: 'truncate', afterBytes: size('truncate') };
      case 'non-json': {
        const status = pairs.get('non-json') === undefined ? undefined : int('non-json');
        const contentType = pairs.get('content-type');
        const body = pairs.get('body');
        return {
          type: 'non-json',
          ...(status !== undefined ? { status } : {}),
          ...(contentType !== undefined ? { contentType } : {}),
          ...(body !== undefined ? { body } : {}),
        };
      }
      case 'expire-url':
        if (pairs.get('expire-url') !== undefined) bad('expire-url takes no value');
        return { type: 'expire-url' };
    }
  })();
  const id = pairs.get('id');
  const key = pairs.get('key');
  const after = optional('after', int);
  const nth = optional('nth', int);
  const times = optional('times', int);
  const seed = optional('seed', int);
  return {
    ...(id !== undefined ? { id } : {}),
    ...(ops.length > 0 ? { op: ops as FaultOp[] } : {}),
    ...(key !== undefined ? { key } : {}),
    ...(after !== undefined ? { after } : {}),
    ...(nth !== undefined ? { nth } : {}),
    ...(times !== undefined ? { times } : {}),
    ...(probability !== undefined ? { probability: Number(probability) } : {}),
    ...(seed !== undefined ? { seed } : {}),
    action,
  };
}
