import { TWIRP_STATUS } from '../errors.js';
import {
  type ExpireUrlFaultAction,
  FAULT_BLOB_OPS,
  FAULT_OPS,
  FAULT_RPCS,
  type FaultAction,
  type FaultDirection,
  type FaultOp,
  type FaultRegistry,
  type FaultRule,
  type FaultRuleInput,
  FaultSpecError,
  type NonJsonFaultAction,
  type StatusFaultAction,
} from './types.js';

/** What a bandwidth or connection fault does to one body. */
export interface BodyShape {
  /** Pace the body at this rate. */
  readonly bytesPerSecond?: number;
  /** Stop after `afterBytes`: `drop` resets the connection, `truncate` closes it cleanly. */
  readonly cut?: { readonly afterBytes: number; readonly mode: 'drop' | 'truncate' };
}

/** The answer-replacing actions. */
export type RespondFaultAction = StatusFaultAction | NonJsonFaultAction | ExpireUrlFaultAction;

/** What the rules that fired on one request ask for. */
export interface FaultPlan {
  /** Snapshots of the rules that fired, counters included, in order. */
  readonly fired: readonly FaultRule[];
  /** Total wait before handling. */
  readonly latencyMs: number;
  /** Answer with this instead of handling the request (the first answering rule; later rules only count the match). */
  readonly respond?: { readonly ruleId: string; readonly action: RespondFaultAction };
  /** Shape of the upload body. */
  readonly request?: BodyShape;
  /** Shape of the answer's body. */
  readonly response?: BodyShape;
}

/** The registry plus what the fault plugin asks it per request. */
export interface FaultEngine extends FaultRegistry {
  /** False while there are no rules: the plugin's hooks then return at once. */
  readonly active: boolean;
  /** Whether any rule for `op` has a key pattern (only then is the key worth finding). */
  needsKey(op: FaultOp): boolean;
  /** Counts the request against every rule and returns what fired, or `undefined` when nothing did. */
  evaluate(op: FaultOp, key: string | undefined): FaultPlan | undefined;
}

const UPLOAD_OPS: readonly FaultOp[] = ['PutBlob', 'PutBlock', 'PutBlockList'];
/** Ops whose successful answer has a body worth shaping. */
const BODY_OPS: readonly FaultOp[] = [...FAULT_RPCS, 'GetBlob'];
const OP_ALIASES: Readonly<Record<string, FaultOp>> = { GetBlobProperties: 'HeadBlob' };

/** `matched` and `fired` are accepted (and ignored) so that a listed rule can be added again. */
const RULE_FIELDS = new Set([
  'id',
  'op',
  'key',
  'after',
  'nth',
  'times',
  'probability',
  'seed',
  'action',
  'matched',
  'fired',
]);
const ACTION_FIELDS: Readonly<Record<FaultAction['type'], readonly string[]>> = {
  status: ['status', 'code', 'message', 'retryAfterSeconds', 'retryAfterMs'],
  latency: ['ms'],
  throttle: ['bytesPerSecond', 'direction'],
  drop: ['afterBytes', 'direction'],
  truncate: ['afterBytes'],
  'non-json': ['status', 'contentType', 'body'],
  'expire-url': [],
};

const fail = (message: string): never => {
  throw new FaultSpecError('ERR_FAULT_SPEC', message);
};

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function integer(name: string, value: unknown, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    return fail(`${name} must be an integer in [${min}, ${max}], got ${JSON.stringify(value)}`);
  }
  return value;
}

function text(name: string, value: unknown, pattern?: RegExp): string {
  if (typeof value !== 'string' || value === '' || (pattern && !pattern.test(value))) {
    return fail(`${name} is invalid: ${JSON.stringify(value)}`);
  }
  return value;
}

function onlyFields(what: string, value: Record<string, unknown>, allowed: ReadonlySet<string>): void {
  const unknown = Object.keys(value).filter((k) => !allowed.has(k));
  if (unknown.length > 0) fail(`${what} has unknown field(s): ${unknown.join(', ')}`);
}

/** `/…/flags` → that regex; anything else is a whole-key glob (`*`, `?`). */
export function compileKeyPattern(pattern: string): RegExp {
  const regex = /^\/(.+)\/([dimsu]*)$/s.exec(pattern);
  if (regex) {
    try {
      return new RegExp(regex[1]!, regex[2]);
    } catch (err) {
      return fail(`key regex ${pattern} is invalid: ${(err as Error).message}`);
    }
  }
  const body = pattern
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replaceAll('*', '.*')
    .replaceAll('?', '.');
  return new RegExp(`^${body}$`, 's');
}

/** mulberry32: a tiny seeded PRNG, uniform in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

const isTwirpCode = (code: string) => Object.hasOwn(TWIRP_STATUS, code);

/** The ops an action can act on, narrowed by what its fields imply. */
function applicableOps(action: FaultAction): readonly FaultOp[] {
  switch (action.type) {
    case 'expire-url':
      return FAULT_BLOB_OPS;
    case 'status':
      if (action.code === undefined) return FAULT_OPS;
      return isTwirpCode(action.code) ? FAULT_RPCS : FAULT_BLOB_OPS;
    case 'throttle':
    case 'drop':
      return action.direction === 'request' ? UPLOAD_OPS : BODY_OPS;
    case 'truncate':
      return BODY_OPS;
    default:
      return FAULT_OPS;
  }
}

function normalizeAction(value: unknown, ops: readonly FaultOp[] | undefined): FaultAction {
  if (!isObject(value)) return fail('action must be an object with a "type"');
  const type = value.type as FaultAction['type'];
  if (typeof type !== 'string' || !Object.hasOwn(ACTION_FIELDS, type)) {
    return fail(
      `action.type must be one of ${Object.keys(ACTION_FIELDS).join(', ')}, got ${JSON.stringify(type)}`,
    );
  }
  onlyFields(`action "${type}"`, value, new Set(['type', ...ACTION_FIELDS[type]]));
  const v = value;
  const defaultDirection = (): FaultDirection =>
    ops?.every((op) => UPLOAD_OPS.includes(op)) ? 'request' : 'response';
  const direction = (): FaultDirection => {
    if (v.direction === undefined) return defaultDirection();
    if (v.direction !== 'request' && v.direction !== 'response') {
      return fail(`action.direction must be "request" or "response", got ${JSON.stringify(v.direction)}`);
    }
    return v.direction;
  };
  switch (type) {
    case 'status': {
      const status = integer('action.status', v.status, 400, 599);
      const code = v.code === undefined ? undefined : text('action.code', v.code, /^[A-Za-z_]{1,64}$/);
      if (code !== undefined && !isTwirpCode(code) && !/^[A-Z]/.test(code)) {
        fail(
          `action.code "${code}" is neither a Twirp code (e.g. unavailable) nor an Azure code (e.g. ServerBusy)`,
        );
      }
      return {
        type,
        status,
        ...(code !== undefined ? { code } : {}),
        ...(v.message !== undefined ? { message: text('action.message', v.message) } : {}),
        ...(v.retryAfterSeconds !== undefined
          ? { retryAfterSeconds: integer('action.retryAfterSeconds', v.retryAfterSeconds, 0) }
          : {}),
        ...(v.retryAfterMs !== undefined
          ? { retryAfterMs: integer('action.retryAfterMs', v.retryAfterMs, 0) }
          : {}),
      };
    }
    case 'latency':
      return { type, ms: integer('action.ms', v.ms, 0) };
    case 'throttle':
      return {
        type,
        bytesPerSecond: integer('action.bytesPerSecond', v.bytesPerSecond, 1),
        direction: direction(),
      };
    case 'drop':
      return { type, afterBytes: integer('action.afterBytes', v.afterBytes, 0), direction: direction() };
    case 'truncate':
      return { type, afterBytes: integer('action.afterBytes', v.afterBytes, 0) };
    case 'non-json':
      return {
        type,
        status: v.status === undefined ? 502 : integer('action.status', v.status, 200, 599),
        ...(v.contentType !== undefined ? { contentType: text('action.contentType', v.contentType) } : {}),
        ...(v.body !== undefined ? { body: String(v.body) } : {}),
      };
    case 'expire-url':
      return { type };
  }
}

function normalizeOps(value: unknown): readonly FaultOp[] | undefined {
  if (value === undefined) return undefined;
  const list = Array.isArray(value) ? value : [value];
  if (list.length === 0) return fail('op must name at least one operation');
  return [
    ...new Set(
      list.map((op: unknown) => {
        const name = typeof op === 'string' ? (OP_ALIASES[op] ?? op) : op;
        if (typeof name !== 'string' || !(FAULT_OPS as readonly string[]).includes(name)) {
          return fail(`op ${JSON.stringify(op)} is not one of ${FAULT_OPS.join(', ')}`);
        }
        return name as FaultOp;
      }),
    ),
  ];
}

interface Entry {
  rule: FaultRule;
  ops: ReadonlySet<FaultOp>;
  pattern: RegExp | undefined;
  random: () => number;
  matched: number;
  fired: number;
}

/** Validates a rule and applies its defaults (counters start at 0). Throws {@link FaultSpecError}. */
export function normalizeFaultRule(input: FaultRuleInput, id: string): Omit<Entry, 'matched' | 'fired'> {
  if (!isObject(input)) return fail('a fault rule must be an object');
  onlyFields('fault rule', input as unknown as Record<string, unknown>, RULE_FIELDS);
  const given = normalizeOps(input.op);
  const action = normalizeAction(input.action, given);
  const applicable = applicableOps(action);
  const wrong = given?.filter((op) => !applicable.includes(op)) ?? [];
  if (wrong.length > 0) {
    fail(
      `action "${action.type}" cannot apply to ${wrong.join(', ')} (it applies to ${applicable.join(', ')})`,
    );
  }
  const op = given ?? applicable;
  const key = input.key === undefined ? undefined : text('key', input.key);
  const pattern = key === undefined ? undefined : compileKeyPattern(key);
  if (input.nth !== undefined && ((input.after ?? 0) !== 0 || input.times !== undefined)) {
    fail('nth cannot be combined with after or times (nth=N is after=N-1,times=1)');
  }
  const nth = input.nth === undefined ? undefined : integer('nth', input.nth, 1);
  const times = input.times === undefined ? undefined : integer('times', input.times, 1);
  const after = input.after === undefined ? 0 : integer('after', input.after, 0);
  const probability = input.probability ?? 1;
  if (typeof probability !== 'number' || !(probability >= 0 && probability <= 1)) {
    fail(`probability must be a number in [0, 1], got ${JSON.stringify(input.probability)}`);
  }
  const seed = input.seed === undefined ? 1 : integer('seed', input.seed, 0, 0xffff_ffff);
  const rule: FaultRule = {
    id,
    op,
    ...(key !== undefined ? { key } : {}),
    after,
    ...(nth !== undefined ? { nth } : {}),
    ...(times !== undefined ? { times } : {}),
    probability,
    seed,
    action,
    matched: 0,
    fired: 0,
  };
  return { rule, ops: new Set(op), pattern, random: mulberry32(seed) };
}

const ID = /^[A-Za-z0-9._-]{1,64}$/;

/** Creates the rule registry and matcher behind `app.mock.faults` and the fault plugin. */
export function createFaultEngine(initial: readonly FaultRuleInput[] = []): FaultEngine {
  const entries: Entry[] = [];
  let nextId = 1;
  const snapshot = (e: Entry): FaultRule => ({ ...e.rule, matched: e.matched, fired: e.fired });

  const engine: FaultEngine = {
    get active() {
      return entries.length > 0;
    },

    add(input) {
      let id: string;
      if (isObject(input) && input.id !== undefined) {
        id = text('id', input.id, ID);
        if (entries.some((e) => e.rule.id === id)) {
          throw new FaultSpecError('ERR_FAULT_DUPLICATE_ID', `a fault rule with id "${id}" already exists`);
        }
      } else {
        do id = `f${nextId++}`;
        while (entries.some((e) => e.rule.id === id));
      }
      const entry: Entry = { ...normalizeFaultRule(input, id), matched: 0, fired: 0 };
      entries.push(entry);
      return snapshot(entry);
    },

    remove(id) {
      const i = entries.findIndex((e) => e.rule.id === id);
      if (i < 0) return false;
      entries.splice(i, 1);
      return true;
    },

    list: () => entries.map(snapshot),

    clear() {
      entries.length = 0;
    },

    needsKey: (op) => entries.some((e) => e.pattern !== undefined && e.ops.has(op)),

    evaluate(op, key) {
      const fired: FaultRule[] = [];
      let latencyMs = 0;
      let respond: FaultPlan['respond'];
      const shapes: { request?: BodyShape; response?: BodyShape } = {};
      for (const e of entries) {
        if (!e.ops.has(op)) continue;
        if (e.pattern && (key === undefined || !e.pattern.test(key))) continue;
        e.matched += 1;
        if (respond) continue; // answered already: counted as a match, but nothing more acts
        const { after, nth, times, probability } = e.rule;
        if (e.matched <= after || (nth !== undefined && e.matched !== nth)) continue;
        if (times !== undefined && e.fired >= times) continue;
        if (probability < 1 && !(e.random() < probability)) continue;
        e.fired += 1;
        fired.push(snapshot(e));
        const { action } = e.rule;
        if (action.type === 'latency') {
          latencyMs += action.ms;
        } else if (action.type === 'throttle') {
          const dir = action.direction ?? 'response';
          const prev = shapes[dir];
          const bytesPerSecond = Math.min(prev?.bytesPerSecond ?? Infinity, action.bytesPerSecond);
          shapes[dir] = { ...prev, bytesPerSecond };
        } else if (action.type === 'drop' || action.type === 'truncate') {
          const dir = action.type === 'drop' ? (action.direction ?? 'response') : 'response';
          const prev = shapes[dir];
          if (!prev?.cut || prev.cut.afterBytes > action.afterBytes) {
            shapes[dir] = { ...prev, cut: { afterBytes: action.afterBytes, mode: action.type } };
          }
        } else {
          respond = { ruleId: e.rule.id, action };
        }
      }
      if (fired.length === 0) return undefined;
      return { fired, latencyMs, ...(respond ? { respond } : {}), ...shapes };
    },
  };
  for (const rule of initial) engine.add(rule);
  return engine;
}
