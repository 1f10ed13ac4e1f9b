import { describe, expect, it } from 'vitest';
import { parseRange, pickRangeHeader } from './ranges.js';

const range = (start: number, end: number) => ({ kind: 'range', range: { start, end } });

describe('ranges', () => {
  it('C-76: x-ms-range wins over Range', () => {
    expect(pickRangeHeader({ 'x-ms-range': 'bytes=1-2', range: 'bytes=3-4' })).toBe('bytes=1-2');
    expect(pickRangeHeader({ range: 'bytes=3-4' })).toBe('bytes=3-4');
    expect(pickRangeHeader({})).toBeUndefined();
  });

  it('C-74/C-75: bytes=a-b, bytes=a-, bytes=-n, clamped to the blob', () => {
    expect(parseRange('bytes=0-9', 100)).toEqual(range(0, 9));
    expect(parseRange('bytes=10-', 100)).toEqual(range(10, 99));
    expect(parseRange('bytes=-10', 100)).toEqual(range(90, 99));
    expect(parseRange('bytes=-1000', 100)).toEqual(range(0, 99));
    expect(parseRange('bytes=50-5000', 100)).toEqual(range(50, 99));
    expect(parseRange('bytes=0-99', 100)).toEqual(range(0, 99));
    expect(parseRange('bytes=99-99', 100)).toEqual(range(99, 99));
    expect(parseRange(' bytes = 1 - 2 ', 100)).toEqual(range(1, 2));
  });

  it('C-77: start ≥ size (incl. any range on an empty blob) is unsatisfiable', () => {
    expect(parseRange('bytes=100-', 100)).toEqual({ kind: 'unsatisfiable' });
    expect(parseRange('bytes=100-200', 100)).toEqual({ kind: 'unsatisfiable' });
    expect(parseRange('bytes=0-0', 0)).toEqual({ kind: 'unsatisfiable' });
    expect(parseRange('bytes=-5', 0)).toEqual({ kind: 'unsatisfiable' });
    expect(parseRange('bytes=-0', 100)).toEqual({ kind: 'unsatisfiable' });
  });

  it('a syntactically invalid range is ignored (full content)', () => {
    for (const bad of [
      '',
      'bytes=',
      'bytes=-',
      'bytes=5-2',
      'items=0-1',
      'bytes=0-1,4-5',
      'bytes=a-b',
      'bytes=1.5-2',
    ]) {
      expect(parseRange(bad, 100)).toEqual({ kind: 'full' });
    }
    expect(parseRange(undefined, 100)).toEqual({ kind: 'full' });
    expect(parseRange('bytes=99999999999999999999-', 100)).toEqual({ kind: 'full' });
  });
});
