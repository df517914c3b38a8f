import { describe, expect, it } from 'vitest';
import { type BucketCount, bucketMillis, planStatements } from '../../src/stage/plan.ts';

const startMs = Date.parse('2026-11-22T00:00:00Z');
const endMs = Date.parse('2026-11-22T01:00:00Z');
const window = { startMs, endMs, bucketMs: bucketMillis(startMs, endMs) };
const day = (d: string) => [d];

describe('planStatements', () => {
  it('makes one statement for a window that fits one file, covering the whole window', () => {
    const counts: BucketCount[] = [
      { bucket: 3, key: day('20261122'), rows: 10 },
      { bucket: 900, key: day('20261122'), rows: 5 },
    ];
    expect(planStatements(counts, window, 1000)).toEqual([
      {
        start: '2026-11-22T00:00:00.000Z',
        end: '2026-11-22T01:00:00.000Z',
        share: { part: 0, of: 1 },
        keys: [['20261122']],
        rows: [15],
        firstFile: 0,
      },
    ]);
  });

  it('cuts consecutive slices of at most maxRows that tile the window without gaps', () => {
    const counts = Array.from({ length: 2048 }, (_, bucket) => ({ bucket, key: day('20261122'), rows: 1 }));
    const statements = planStatements(counts, window, 500);
    expect(statements.length).toBe(5);
    expect(statements[0]?.start).toBe('2026-11-22T00:00:00.000Z');
    expect(statements.at(-1)?.end).toBe('2026-11-22T01:00:00.000Z');
    for (let i = 1; i < statements.length; i++) expect(statements[i]?.start).toBe(statements[i - 1]?.end);
    expect(statements.map((s) => s.firstFile)).toEqual([0, 1, 2, 3, 4]);
  });

  it('gives a slice one file per partition it holds, numbered in order', () => {
    const counts: BucketCount[] = [
      { bucket: 1, key: ['20261122', 'kraken'], rows: 3 },
      { bucket: 1, key: ['20261121', 'binance'], rows: 3 },
      { bucket: 2, key: ['20261122', 'binance'], rows: 3 },
    ];
    const [only] = planStatements(counts, window, 100);
    expect(only?.keys).toEqual([
      ['20261121', 'binance'],
      ['20261122', 'binance'],
      ['20261122', 'kraken'],
    ]);
    expect(only?.rows).toEqual([3, 3, 3]);
  });

  it('splits a bucket bigger than maxRows into hash shares, each with its own files', () => {
    const counts: BucketCount[] = [
      { bucket: 0, key: day('a'), rows: 10 },
      { bucket: 7, key: day('a'), rows: 2500 },
      { bucket: 7, key: day('b'), rows: 1 },
    ];
    const statements = planStatements(counts, window, 1000);
    expect(statements.map((s) => [s.share, s.firstFile])).toEqual([
      [{ part: 0, of: 1 }, 0],
      [{ part: 0, of: 3 }, 1],
      [{ part: 1, of: 3 }, 3],
      [{ part: 2, of: 3 }, 5],
    ]);
    // Every share of a slice carries the slice's rows per partition: the shares' files hold them together.
    expect(statements.map((s) => s.rows)).toEqual([[10], [2500, 1], [2500, 1], [2500, 1]]);
  });

  it('plans nothing for an empty window', () => {
    expect(planStatements([], window, 1000)).toEqual([]);
  });

  it('uses buckets of whole milliseconds, about 1/2048 of the window', () => {
    expect(bucketMillis(0, 3_600_000)).toBe(1758);
    expect(bucketMillis(0, 1000)).toBe(1);
  });
});
