import { describe, expect, it } from 'vitest';
import { type HourAudit, isOk, judgeHour } from '../../src/audit/audit.ts';
import type { HourPrint } from '../../src/audit/compare.ts';
import { defaultConfig, tableByName } from '../../src/config/load.ts';

/**
 * The audit's verdict on one hour from the two sides' prints (rows, distinct keys, keys seen twice,
 * digest), before any key is fetched: which hours it calls clean, and what it counts for the others.
 */
const trades = tableByName(defaultConfig(), 'bronze_trades_binance');
const candles = tableByName(defaultConfig(), 'ohlcv_1m');
const HOUR = '2026-11-22T10:00:00Z';
const print = (over: Partial<HourPrint> = {}): HourPrint => ({
  hour: HOUR,
  rows: 100,
  keys: 100,
  duplicateKeys: 0,
  digest: '123456789',
  ...over,
});
/** The audit's final word on an hour whose keys were not fetched: balanced and exact. */
const ok = (h: HourAudit) => isOk(h) && h.exact;

describe("the audit's verdict on an hour", () => {
  it('the same keys on both sides: exact, nothing missing or extra, ok', () => {
    const h = judgeHour(trades, print(), print());
    expect(h).toEqual({
      hour: HOUR,
      clickhouseRows: 100,
      expectedRows: 100,
      icebergRows: 100,
      missingKeys: 0,
      extraKeys: 0,
      duplicateKeys: 0,
      sourceDuplicateKeys: 0,
      skippedKeys: 0,
      exact: true,
      ok: false,
      samples: null,
    });
    expect(ok(h)).toBe(true);
  });

  it('keys Iceberg lacks are missing, keys it has besides are extra, by the key counts', () => {
    const lacking = judgeHour(trades, print(), print({ rows: 97, keys: 97, digest: '1' }));
    expect(lacking).toMatchObject({ icebergRows: 97, missingKeys: 3, extraKeys: 0, exact: false });
    expect(isOk(lacking)).toBe(false);
    const more = judgeHour(trades, print(), print({ rows: 102, keys: 102, digest: '2' }));
    expect(more).toMatchObject({ missingKeys: 0, extraKeys: 2, exact: false });
    expect(isOk(more)).toBe(false);
  });

  it('the same counts with another digest: one key lost and another in its place, never ok', () => {
    const h = judgeHour(trades, print(), print({ digest: '987654321' }));
    expect(h).toMatchObject({ icebergRows: 100, missingKeys: 0, extraKeys: 0, exact: false });
    // The counts balance; only the digest says the keys differ, so the hour is not ok until they are fetched.
    expect(isOk(h)).toBe(true);
    expect(ok(h)).toBe(false);
  });

  it('an hour only ClickHouse holds: all its keys missing; only Iceberg holds: all extra', () => {
    const onlyHot = judgeHour(trades, print(), undefined);
    expect(onlyHot).toMatchObject({
      hour: HOUR,
      icebergRows: 0,
      missingKeys: 100,
      extraKeys: 0,
      exact: false,
    });
    expect(isOk(onlyHot)).toBe(false);
    const onlyCold = judgeHour(trades, undefined, print({ rows: 5, keys: 5 }));
    expect(onlyCold).toMatchObject({
      hour: HOUR,
      clickhouseRows: 0,
      expectedRows: 0,
      icebergRows: 5,
      missingKeys: 0,
      extraKeys: 5,
      exact: false,
    });
    expect(isOk(onlyCold)).toBe(false);
  });

  it('a key ClickHouse itself holds twice may be twice in Iceberg; a third copy or another key twice is not', () => {
    const source = print({ rows: 101, duplicateKeys: 1 });
    const same = judgeHour(trades, source, source);
    expect(same).toMatchObject({ expectedRows: 101, duplicateKeys: 1, sourceDuplicateKeys: 1 });
    expect(ok(same)).toBe(true);
    const twice = judgeHour(trades, print(), print({ rows: 101, duplicateKeys: 1 }));
    expect(twice).toMatchObject({ icebergRows: 101, expectedRows: 100, duplicateKeys: 1, exact: true });
    expect(ok(twice)).toBe(false);
    // Rows that balance (one key lost, another doubled) still show the duplicate.
    const hidden = judgeHour(trades, print(), print({ keys: 99, duplicateKeys: 1, digest: '3' }));
    expect(isOk({ ...hidden, missingKeys: 0, extraKeys: 0 })).toBe(false);
  });

  it('candles are expected once per key, however many partial rows the hot tier holds', () => {
    const hot = print({ rows: 250, keys: 100, duplicateKeys: 80 });
    const h = judgeHour(candles, hot, print());
    expect(h).toMatchObject({ clickhouseRows: 250, expectedRows: 100, sourceDuplicateKeys: 0, exact: true });
    expect(ok(h)).toBe(true);
    // A candle twice in Iceberg is a duplicate even though the hot tier's partial rows repeat keys.
    expect(ok(judgeHour(candles, hot, print({ rows: 101, duplicateKeys: 1 })))).toBe(false);
  });

  it('keys left out by an audited skip balance the rows; any other shortfall does not', () => {
    const h = judgeHour(trades, print(), print({ rows: 90, keys: 90, digest: '4' }));
    // As the key diff leaves it: the ten keys Iceberg lacks all lie in a skip.
    const skipped = { ...h, missingKeys: 0, skippedKeys: 10, exact: true };
    expect(ok(skipped)).toBe(true);
    expect(ok({ ...skipped, skippedKeys: 9, missingKeys: 1 })).toBe(false);
    expect(ok({ ...skipped, skippedKeys: 11 })).toBe(false);
    expect(ok({ ...skipped, extraKeys: 1 })).toBe(false);
  });
});
