import { describe, expect, it } from 'vitest';
import { parseFaultSpec } from './spec.js';
import { FaultSpecError } from './types.js';

describe('parseFaultSpec', () => {
  it('reads the compact syntax, one example per action', () => {
    expect(parseFaultSpec('rpc=CreateCacheEntry,status=429,retry-after=3,times=2')).toEqual({
      op: ['CreateCacheEntry'],
      times: 2,
      action: { type: 'status', status: 429, retryAfterSeconds: 3 },
    });
    expect(
      parseFaultSpec('op=PutBlock|PutBlob,status=503,code=ServerBusy,retry-after-ms=20,msg=busy'),
    ).toEqual({
      op: ['PutBlock', 'PutBlob'],
      action: { type: 'status', status: 503, code: 'ServerBusy', message: 'busy', retryAfterMs: 20 },
    });
    expect(parseFaultSpec('latency=1.5s,key=index-*')).toEqual({
      key: 'index-*',
      action: { type: 'latency', ms: 1500 },
    });
    expect(parseFaultSpec('latency=250').action).toEqual({ type: 'latency', ms: 250 });
    expect(parseFaultSpec('op=GetBlob,throttle=64k/s').action).toEqual({
      type: 'throttle',
      bytesPerSecond: 65536,
    });
    expect(parseFaultSpec('op=PutBlock,throttle=1MiB,direction=request').action).toEqual({
      type: 'throttle',
      bytesPerSecond: 1048576,
      direction: 'request',
    });
    expect(parseFaultSpec('op=GetBlob,drop=1m,nth=1')).toEqual({
      op: ['GetBlob'],
      nth: 1,
      action: { type: 'drop', afterBytes: 1048576 },
    });
    expect(parseFaultSpec('blob=GetBlob,truncate=100').action).toEqual({ type: 'truncate', afterBytes: 100 });
    expect(parseFaultSpec('rpc=FinalizeCacheEntryUpload,non-json,times=1').action).toEqual({
      type: 'non-json',
    });
    expect(parseFaultSpec('non-json=503,content-type=text/plain,body=oops').action).toEqual({
      type: 'non-json',
      status: 503,
      contentType: 'text/plain',
      body: 'oops',
    });
    expect(parseFaultSpec('id=exp,op=GetBlob,expire-url,after=1,p=0.5,seed=9')).toEqual({
      id: 'exp',
      op: ['GetBlob'],
      after: 1,
      probability: 0.5,
      seed: 9,
      action: { type: 'expire-url' },
    });
  });

  it('accepts a JSON rule', () => {
    expect(parseFaultSpec(' {"op":"GetBlob","nth":2,"action":{"type":"expire-url"}} ')).toEqual({
      op: 'GetBlob',
      nth: 2,
      action: { type: 'expire-url' },
    });
  });

  it('rejects bad specs with ERR_FAULT_SPEC and says why', () => {
    const cases: [string, RegExp][] = [
      ['op=CreateCacheEntry', /no action/],
      ['status=500,latency=5', /one action per rule, got status and latency/],
      ['status=500,direction=request', /unknown name\(s\) direction for action "status"/],
      ['status=abc', /"status" must be a whole number/],
      ['status', /"status" needs a value/],
      ['status=500,times=1,times=2', /"times" given twice/],
      ['latency=fast', /latency must be a duration/],
      ['drop=lots', /byte count/],
      ['expire-url=1', /takes no value/],
      ['status=500,p=2', /probability/],
      ['op=GetBlob,status=700', /action.status must be an integer/],
      ['rpc=CreateCacheEntry,expire-url', /cannot apply to CreateCacheEntry/],
      ['{"action":', /not valid JSON/],
    ];
    for (const [spec, message] of cases) {
      let caught: unknown;
      try {
        parseFaultSpec(spec);
      } catch (err) {
        caught = err;
      }
      expect(caught, spec).toBeInstanceOf(FaultSpecError);
      expect((caught as FaultSpecError).code).toBe('ERR_FAULT_SPEC');
      expect((caught as Error).message, spec).toMatch(message);
      expect((caught as Error).message).toContain(`invalid fault "${spec}"`);
    }
  });
});
