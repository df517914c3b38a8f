import { describe, expect, it } from 'vitest';
import { defaultConfig, tableByName } from '../../src/config/load.ts';
import {
  carriedMismatches,
  checkedRange,
  compareHours,
  coveredHours,
  lookbackReaching,
} from '../../src/hourly/check.ts';
import { repairIdOf } from '../../src/hourly/repair.ts';
import { hourDelta } from '../../src/hourly/repair-rows.ts';
import type { HourlyCheck, LedgerEntry } from '../../src/watermark/hourly-types.ts';

const H = (h: number) => new Date(Date.UTC(2026, 10, 22, h)).toISOString();
const at = (h: number, m = 0) => new Date(Date.UTC(2026, 10, 22, h, m)).toISOString();
const entry = (
  windowStart: string,
  windowEnd: string,
  kind: LedgerEntry['kind'] = 'offload',
): LedgerEntry => ({
  table: 't',
  batchId: `${windowStart}-${kind}`,
  kind,
  windowStart,
  windowEnd,
  hours: [],
  recordedAt: windowEnd,
});

describe('per-hour check', () => {
  const bronze = tableByName(defaultConfig(), 'bronze_trades_binance');

  it('compares closed hours below the cursor within the look-back, an hour clear of the TTL', () => {
    const now = new Date(at(12, 40));
    expect(checkedRange(bronze, at(12, 30), now, 48)).toEqual({
      from: new Date(Date.parse(H(12)) - 48 * 3_600_000).toISOString(),
      to: H(12),
    });
    expect(checkedRange(bronze, at(12, 30), now, 3)).toEqual({ from: H(9), to: H(12) });
    // bronze keeps 7 days: a look-back past the TTL stops an hour short of it.
    const { from } = checkedRange(bronze, at(12, 30), now, 24 * 30);
    expect(Date.parse(from)).toBe(Date.parse(H(13)) - 7 * 86_400_000 + 3_600_000);
  });

  it('checks only hours wholly inside recorded offload windows (a batch with no hours known leaves a hole)', () => {
    const entries = [
      entry(at(8, 20), at(9, 0)),
      entry(at(9, 0), at(9, 30)),
      entry(at(9, 30), at(10, 0)),
      // 10:00-10:15 was committed before markers carried hours, and reconciled: no ledger entry.
      entry(at(10, 15), at(11, 0)),
      entry(at(11, 0), at(12, 0)),
      // A repair adds rows to an hour, not coverage.
      entry(at(12, 0), at(13, 0), 'repair'),
    ];
    expect(coveredHours(entries, H(8), H(13))).toEqual([H(9), H(11)]);
  });

  it('keeps reporting a differing hour once it is older than the look-back, until the TTL; a repair reaches back to it', () => {
    const mismatch = (hour: string) => ({
      hour,
      clickhouseRows: 3,
      committedRows: 2,
      clickhouseChecksum: '0',
      committedChecksum: '0',
    });
    const previous: HourlyCheck = {
      table: 't',
      checkedAt: at(12, 40),
      from: H(2),
      to: H(12),
      checkedHours: 10,
      mismatches: [mismatch(H(1)), mismatch(H(3)), mismatch(H(9))],
    };
    // Now checking from 04:00: 03:00 is past the look-back but kept; 01:00 is below the TTL's edge;
    // 09:00 lies in the checked range, which decides it afresh.
    expect(carriedMismatches(previous, H(2), H(4))).toEqual([mismatch(H(3))]);
    expect(carriedMismatches(null, H(2), H(4))).toEqual([]);
    expect(lookbackReaching(at(12, 30), [mismatch(H(3)), mismatch(H(9))])).toBe(9);
    expect(lookbackReaching(at(12, 30), [])).toBe(0);
  });

  it('flags hours whose rows or value checksum differ, an hour missing on one side counting as zero', () => {
    const hours = [H(1), H(2), H(3), H(4)];
    const clickhouse = [
      { hour: H(1), rows: 10, checksum: '0' },
      { hour: H(2), rows: 12, checksum: '0' },
      { hour: H(3), rows: 5, checksum: '77' },
    ];
    const committed = [
      { hour: H(1), rows: 10, checksum: '0' },
      { hour: H(2), rows: 10, checksum: '0' },
      { hour: H(3), rows: 5, checksum: '76' },
      { hour: H(4), rows: 3, checksum: '0' },
    ];
    expect(
      compareHours(hours, clickhouse, committed).map((m) => [m.hour, m.clickhouseRows, m.committedRows]),
    ).toEqual([
      [H(2), 12, 10],
      [H(3), 5, 5],
      [H(4), 0, 3],
    ]);
  });

  it('a repair adds the difference to the ledger, and its id changes once the ledger has it', () => {
    const now = [
      { hour: H(1), rows: 12, checksum: '5' },
      { hour: H(2), rows: 4, checksum: '9' },
    ];
    const committed = [
      { hour: H(1), rows: 10, checksum: '7' },
      { hour: H(2), rows: 4, checksum: '9' },
    ];
    expect(hourDelta(now, committed)).toEqual([
      { hour: H(1), rows: 2, checksum: (2n ** 64n - 2n).toString() },
    ]);
    const mismatch = {
      hour: H(1),
      clickhouseRows: 12,
      committedRows: 10,
      clickhouseChecksum: '5',
      committedChecksum: '7',
    };
    const id = repairIdOf('t', [mismatch]);
    expect(repairIdOf('t', [mismatch])).toBe(id);
    expect(repairIdOf('u', [mismatch])).not.toBe(id);
    expect(repairIdOf('t', [{ ...mismatch, committedRows: 11 }])).not.toBe(id);
  });
});
