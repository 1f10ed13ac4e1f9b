import { describe, expect, it } from 'vitest';
import { compileKeyPattern, createFaultEngine, mulberry32 } from './engine.js';
import { type FaultRuleInput, FaultSpecError } from './types.js';

const status500 = { type: 'status', status: 500 } as const;

/** Which of `n` requests (1-based) the engine fires on for `rule`. */
function firings(rule: FaultRuleInput, n: number, op: FaultRuleInput['op'] = 'CreateCacheEntry'): number[] {
  const engine = createFaultEngine([rule]);
  const fired: number[] = [];
  for (let i = 1; i <= n; i++) if (engine.evaluate(op as 'CreateCacheEntry', 'k')) fired.push(i);
  return fired;
}

function specError(fn: () => unknown): FaultSpecError {
  try {
    fn();
  } catch (err) {
    if (err instanceof FaultSpecError) return err;
    throw err;
  }
  throw new Error('expected a FaultSpecError');
}

describe('fault engine: counting', () => {
  it('fires on every match by default, `times` caps it, `after` lets the first matches through', () => {
    expect(firings({ action: status500 }, 3)).toEqual([1, 2, 3]);
    expect(firings({ times: 2, action: status500 }, 4)).toEqual([1, 2]);
    expect(firings({ after: 2, action: status500 }, 4)).toEqual([3, 4]);
    expect(firings({ after: 1, times: 2, action: status500 }, 5)).toEqual([2, 3]);
  });

  it('`nth` fires on that match only', () => {
    expect(firings({ nth: 3, action: status500 }, 6)).toEqual([3]);
  });

  it('probability draws from a seeded PRNG: same seed, same firings; other seed, other firings', () => {
    const a = firings({ probability: 0.5, seed: 42, action: status500 }, 200);
    expect(a).toEqual(firings({ probability: 0.5, seed: 42, action: status500 }, 200));
    expect(a).not.toEqual(firings({ probability: 0.5, seed: 43, action: status500 }, 200));
    expect(a.length).toBeGreaterThan(70);
    expect(a.length).toBeLessThan(130);
    expect(firings({ probability: 0, action: status500 }, 50)).toEqual([]);
    // Only draws the counters allow are taken: with times=3 exactly 3 fire, whatever the seed.
    expect(firings({ probability: 0.3, times: 3, action: status500 }, 200)).toHaveLength(3);
  });

  it('mulberry32 is deterministic and in [0, 1)', () => {
    const r = mulberry32(7);
    const values = Array.from({ length: 1000 }, r);
    expect(values.every((v) => v >= 0 && v < 1)).toBe(true);
    expect(Array.from({ length: 1000 }, mulberry32(7))).toEqual(values);
  });

  it('matches by op and by key (glob or /regex/), counting only matching requests', () => {
    const engine = createFaultEngine([
      { id: 'glob', op: ['CreateCacheEntry', 'GetBlob'], key: 'buildkit-blob-*', nth: 2, action: status500 },
      { id: 're', key: '/^index-.+#\\d+$/', action: { type: 'latency', ms: 5 } },
    ]);
    expect(engine.needsKey('GetBlob')).toBe(true);
    expect(engine.evaluate('CreateCacheEntry', 'other')).toBeUndefined();
    expect(engine.evaluate('CreateCacheEntry', undefined)).toBeUndefined();
    expect(engine.evaluate('FinalizeCacheEntryUpload', 'buildkit-blob-1')).toBeUndefined();
    expect(engine.evaluate('GetBlob', 'buildkit-blob-1')).toBeUndefined(); // match 1 of "glob"
    expect(engine.evaluate('CreateCacheEntry', 'buildkit-blob-2')?.respond?.ruleId).toBe('glob');
    expect(engine.evaluate('GetCacheEntryDownloadURL', 'index-main-1-abc#3')?.latencyMs).toBe(5);
    expect(engine.list().map((r) => [r.id, r.matched, r.fired])).toEqual([
      ['glob', 2, 1],
      ['re', 1, 1],
    ]);
  });

  it('globs are whole-key and escape regex characters; `?` is one character', () => {
    expect(compileKeyPattern('a.b*').test('a.bc')).toBe(true);
    expect(compileKeyPattern('a.b*').test('axbc')).toBe(false);
    expect(compileKeyPattern('k?').test('k1')).toBe(true);
    expect(compileKeyPattern('k?').test('k12')).toBe(false);
    expect(compileKeyPattern('/ab/i').test('xABy')).toBe(true);
  });
});

describe('fault engine: plans', () => {
  it('every matching rule fires in order until one answers the request; later rules only count the match', () => {
    const engine = createFaultEngine([
      { id: 'slow', action: { type: 'latency', ms: 10 } },
      { id: 'slower', action: { type: 'latency', ms: 20 } },
      { id: 'fail', op: 'GetBlob', action: { type: 'status', status: 503 } },
      { id: 'never', op: 'GetBlob', action: { type: 'expire-url' } },
    ]);
    const plan = engine.evaluate('GetBlob', undefined);
    expect(plan).toMatchObject({ latencyMs: 30, respond: { ruleId: 'fail', action: { status: 503 } } });
    expect(plan?.fired.map((r) => r.id)).toEqual(['slow', 'slower', 'fail']);
    expect(engine.list().find((r) => r.id === 'never')).toMatchObject({ matched: 1, fired: 0 });
  });

  it('body faults combine: the lowest rate and the earliest cut win, per direction', () => {
    const engine = createFaultEngine([
      { action: { type: 'throttle', bytesPerSecond: 1000 } },
      { action: { type: 'throttle', bytesPerSecond: 500 } },
      { action: { type: 'truncate', afterBytes: 100 } },
      { action: { type: 'drop', afterBytes: 50 } },
      { op: 'PutBlock', action: { type: 'throttle', bytesPerSecond: 10 } },
    ]);
    expect(engine.evaluate('GetBlob', undefined)).toMatchObject({
      response: { bytesPerSecond: 500, cut: { afterBytes: 50, mode: 'drop' } },
    });
    const upload = engine.evaluate('PutBlock', undefined);
    expect(upload).toMatchObject({ request: { bytesPerSecond: 10 } });
    expect(upload?.response).toBeUndefined();
  });

  it('derives the ops an action applies to; throttle/drop on uploads default to the request body', () => {
    const engine = createFaultEngine();
    expect(engine.add({ action: { type: 'expire-url' } }).op).toEqual([
      'PutBlob',
      'PutBlock',
      'PutBlockList',
      'GetBlob',
      'HeadBlob',
    ]);
    expect(engine.add({ action: { type: 'truncate', afterBytes: 1 } }).op).toEqual([
      'CreateCacheEntry',
      'FinalizeCacheEntryUpload',
      'GetCacheEntryDownloadURL',
      'GetBlob',
    ]);
    expect(engine.add({ action: { type: 'status', status: 503, code: 'ServerBusy' } }).op).toHaveLength(5);
    expect(engine.add({ action: { type: 'status', status: 503, code: 'unavailable' } }).op).toHaveLength(3);
    expect(
      engine.add({ op: ['PutBlob', 'PutBlock'], action: { type: 'drop', afterBytes: 5 } }).action,
    ).toEqual({
      type: 'drop',
      afterBytes: 5,
      direction: 'request',
    });
    expect(
      engine.add({ op: 'GetBlob', action: { type: 'throttle', bytesPerSecond: 5 } }).action,
    ).toMatchObject({
      direction: 'response',
    });
    expect(engine.add({ op: 'GetBlobProperties' as 'HeadBlob', action: status500 }).op).toEqual(['HeadBlob']);
  });
});

describe('fault engine: registry', () => {
  it('adds with generated ids, lists JSON-serialisable snapshots, removes and clears', () => {
    const engine = createFaultEngine([{ action: status500 }]);
    expect(engine.active).toBe(true);
    const added = engine.add({ id: 'mine', op: 'GetBlob', times: 1, action: { type: 'expire-url' } });
    expect(added).toEqual({
      id: 'mine',
      op: ['GetBlob'],
      after: 0,
      times: 1,
      probability: 1,
      seed: 1,
      action: { type: 'expire-url' },
      matched: 0,
      fired: 0,
    });
    expect(engine.add({ action: status500 }).id).toBe('f2');
    expect(JSON.parse(JSON.stringify(engine.list()))).toEqual(engine.list());
    // A listed rule can be added again (counters are ignored).
    const again = createFaultEngine(engine.list().map((r) => ({ ...r, id: `${r.id}-copy` })));
    expect(again.list().map((r) => r.fired)).toEqual([0, 0, 0]);
    expect(engine.remove('mine')).toBe(true);
    expect(engine.remove('mine')).toBe(false);
    engine.clear();
    expect(engine.list()).toEqual([]);
    expect(engine.active).toBe(false);
  });

  it('rejects invalid rules with FaultSpecError and a message naming the field', () => {
    const engine = createFaultEngine([{ id: 'taken', action: status500 }]);
    const cases: [unknown, RegExp][] = [
      [{ action: status500, id: 'taken' }, /already exists/],
      [{ action: { type: 'status', status: 200 } }, /action.status must be an integer in \[400, 599\]/],
      [{ action: { type: 'teapot' } }, /action.type must be one of/],
      [{ action: { type: 'latency', ms: 5, extra: 1 } }, /unknown field\(s\): extra/],
      [{ action: status500, op: 'DeleteBlob' }, /op "DeleteBlob" is not one of/],
      [{ action: { type: 'expire-url' }, op: 'CreateCacheEntry' }, /cannot apply to CreateCacheEntry/],
      [
        { action: { type: 'status', status: 503, code: 'unavailable' }, op: 'GetBlob' },
        /cannot apply to GetBlob/,
      ],
      [{ action: { type: 'drop', afterBytes: 1, direction: 'request' }, op: 'GetBlob' }, /cannot apply/],
      [{ action: status500, key: '/(/' }, /key regex/],
      [{ action: status500, nth: 2, times: 1 }, /nth cannot be combined/],
      [{ action: status500, probability: 1.5 }, /probability/],
      [{ action: status500, bogus: true }, /unknown field\(s\): bogus/],
      [{ action: status500, id: 'bad id' }, /id is invalid/],
      [{ action: { type: 'status', status: 500, code: 'lower case' } }, /action.code is invalid/],
      [{}, /action must be an object/],
    ];
    for (const [rule, message] of cases) {
      const err = specError(() => engine.add(rule as FaultRuleInput));
      expect(err.message).toMatch(message);
      expect(err.code).toBe(message.source.includes('already') ? 'ERR_FAULT_DUPLICATE_ID' : 'ERR_FAULT_SPEC');
    }
    expect(engine.list()).toHaveLength(1);
  });
});
