import { describe, expect, it } from 'vitest';
import { defaultConfig, tableByName } from '../../src/config/load.ts';
import {
  carriedMismatches,
  checkedRange,
  checkRecords,
  compareHours,
  coveredHours,
  lookbackReaching,
  valuesComparableFrom,
} from '../../src/hourly/check.ts';
import { repairIdOf } from '../../src/hourly/repair.ts';
import { hourDelta } from '../../src/hourly/repair-rows.ts';
import { sumHours } from '../../src/hourly/sql.ts';
import type { TableMetadata } from '../../src/iceberg/metadata.ts';
import { MARKER_KEYS } from '../../src/iceberg/table.ts';
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

  it('checks no hour of a cursor older than the TTL reaches: those rows may be gone from ClickHouse', () => {
    const now = new Date(at(12, 40));
    const cursor = new Date(Date.parse(at(12, 30)) - 8 * 86_400_000).toISOString();
    const { from, to } = checkedRange(bronze, cursor, now, 48);
    expect(to).toBe(new Date(Date.parse(H(12)) - 8 * 86_400_000).toISOString());
    expect(from).toBe(to);
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
      mismatches: [mismatch(H(1)), mismatch(H(2)), mismatch(H(3)), mismatch(H(4)), mismatch(H(9))],
    };
    // Now checking from 04:00: 02:00 (the TTL's edge itself) and 03:00 are past the look-back but
    // kept; 01:00 is below the TTL's edge; 04:00 and 09:00 lie in the checked range, which decides
    // them afresh.
    expect(carriedMismatches(previous, H(2), H(4))).toEqual([mismatch(H(2)), mismatch(H(3))]);
    expect(carriedMismatches(null, H(2), H(4))).toEqual([]);
    expect(lookbackReaching(at(12, 30), [mismatch(H(3)), mismatch(H(9))])).toBe(9);
    expect(lookbackReaching(at(12, 30), [])).toBe(0);
  });

  it('covers hours of windows recorded in any order, one window inside another included', () => {
    // Ledger order is not window order (a repaired or replayed batch), and a replay may repeat a span.
    const entries = [entry(at(10), at(12)), entry(at(8), at(10)), entry(at(9), at(9, 30))];
    expect(coveredHours(entries, H(7), H(13))).toEqual([H(8), H(9), H(10), H(11)]);
  });

  it('covers an hour only two overlapping windows share between them (a retried window), after other gaps', () => {
    const entries = [
      entry(at(0), at(1)),
      entry(at(2), at(3)),
      entry(at(4), at(5, 30)),
      entry(at(5, 15), at(7)),
    ];
    expect(coveredHours(entries, H(0), H(8))).toEqual([H(0), H(2), H(4), H(5), H(6)]);
  });

  it("never checks the range's end hour, even where a window covers it (after a rewind the ledger runs ahead)", () => {
    expect(coveredHours([entry(at(8), at(11))], H(8), H(10))).toEqual([H(8), H(9)]);
  });

  it('flags no hour whose committed rows cancelled out (an offload and a repair) where ClickHouse has none', () => {
    expect(compareHours([H(1)], [], [{ hour: H(1), rows: 0, checksum: '0' }])).toEqual([]);
  });

  it('flags an hour ClickHouse holds that no batch committed, with both sides of the difference', () => {
    const mismatches = compareHours(
      [H(1), H(2)],
      [
        { hour: H(1), rows: 4, checksum: '11' },
        { hour: H(2), rows: 2, checksum: '5' },
      ],
      [{ hour: H(2), rows: 2, checksum: '6' }],
    );
    expect(mismatches).toEqual([
      { hour: H(1), clickhouseRows: 4, committedRows: 0, clickhouseChecksum: '11', committedChecksum: '0' },
      { hour: H(2), clickhouseRows: 2, committedRows: 2, clickhouseChecksum: '5', committedChecksum: '6' },
    ]);
  });

  it('adds up what several batches committed to one hour, in hour order, checksums modulo 2^64', () => {
    const max = (2n ** 64n - 1n).toString();
    const counts = [
      { hour: H(3), rows: 2, checksum: '1' },
      { hour: H(1), rows: 5, checksum: max },
      { hour: H(3), rows: 1, checksum: '4' },
      { hour: H(1), rows: 7, checksum: '3' },
    ];
    expect(sumHours(counts)).toEqual([
      { hour: H(1), rows: 12, checksum: '2' },
      { hour: H(3), rows: 3, checksum: '5' },
    ]);
    // The inputs are left as they were: a batch's own hours are not changed by adding them up.
    expect(counts[0]).toEqual({ hour: H(3), rows: 2, checksum: '1' });
  });

  it("publishes each checked table's mismatched hours as its metric, zero when all agree", () => {
    const check = (table: string, mismatches: number) => ({
      table,
      checkedAt: H(5),
      from: H(1),
      to: H(5),
      checkedHours: 4,
      mismatches: Array.from({ length: mismatches }, (_, i) => ({
        hour: H(i + 1),
        clickhouseRows: 1,
        committedRows: 0,
        clickhouseChecksum: '0',
        committedChecksum: '0',
      })),
    });
    expect(checkRecords([check('a', 2), check('b', 0)], 1_000)).toEqual([
      { timestamp: 1_000, dimensions: { Table: 'a' }, values: { hourlyMismatchHours: 2 } },
      { timestamp: 1_000, dimensions: { Table: 'b' }, values: { hourlyMismatchHours: 0 } },
    ]);
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

  it('compares value checksums only from the hour they were taken over the current columns on; rows always', () => {
    const hours = [H(1), H(2), H(3)];
    const clickhouse = hours.map((hour) => ({ hour, rows: 5, checksum: '77' }));
    const committed = [
      { hour: H(1), rows: 5, checksum: '1' },
      { hour: H(2), rows: 5, checksum: '2' },
      { hour: H(3), rows: 4, checksum: '77' },
    ];
    // Before 02:00 the ledger's checksums hash other columns: only the rows of 01:00 are compared.
    expect(compareHours(hours, clickhouse, committed, H(2)).map((m) => m.hour)).toEqual([H(2), H(3)]);
    expect(compareHours(hours, clickhouse, committed, H(3)).map((m) => m.hour)).toEqual([H(3)]);
    expect(compareHours(hours, clickhouse, committed).map((m) => m.hour)).toEqual([H(1), H(2), H(3)]);
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

describe('since when the value checksums compare (a candle table whose schema changed)', () => {
  type Snap = { schema: number; start: string; operation?: string; batch?: boolean };
  /** Schemas by id (field id and type), the current one, and snapshots oldest first, each the parent of the next. */
  const history = (schemas: Record<number, [number, string][]>, current: number, snaps: Snap[]) =>
    ({
      'current-schema-id': current,
      schemas: Object.entries(schemas).map(([id, fields]) => ({
        'schema-id': Number(id),
        type: 'struct',
        fields: fields.map(([fid, type]) => ({ id: fid, name: `c${fid}`, required: false, type })),
      })),
      'current-snapshot-id': BigInt(snaps.length),
      snapshots: snaps.map((s, i) => ({
        'snapshot-id': BigInt(i + 1),
        'parent-snapshot-id': i === 0 ? undefined : BigInt(i),
        'schema-id': s.schema,
        'timestamp-ms': Date.parse(s.start),
        summary: {
          operation: s.operation ?? 'append',
          ...(s.batch === false
            ? {}
            : { [MARKER_KEYS.batchId]: `b${i}`, [MARKER_KEYS.windowStart]: s.start }),
        },
      })),
    }) as unknown as TableMetadata;
  const before = {
    0: [
      [1, 'long'],
      [2, 'string'],
    ] as [number, string][],
  };
  const added = {
    ...before,
    1: [
      [1, 'long'],
      [2, 'string'],
      [3, 'double'],
    ] as [number, string][],
  };

  it('every offload under the columns the table has now: every hour compares values', () => {
    expect(
      valuesComparableFrom(
        history(before, 0, [
          { schema: 0, start: H(1) },
          { schema: 0, start: H(2) },
        ]),
      ),
    ).toBe(undefined);
    // Another schema id with the same field ids and types (in any order) hashes the same columns.
    const reordered = {
      ...before,
      2: [
        [2, 'string'],
        [1, 'long'],
      ] as [number, string][],
    };
    expect(
      valuesComparableFrom(
        history(reordered, 2, [
          { schema: 0, start: H(1) },
          { schema: 2, start: H(2) },
        ]),
      ),
    ).toBe(undefined);
  });

  it('a column added: values compare from the first offload written with it', () => {
    const snaps = [
      { schema: 0, start: H(1) },
      { schema: 0, start: H(2) },
      { schema: 1, start: H(3) },
      { schema: 1, start: H(4) },
    ];
    expect(valuesComparableFrom(history(added, 1, snaps))).toBe(H(3));
    // A compaction, a repair and another writer's append since (none an offload) change nothing.
    const others = [
      { schema: 0, start: H(5), operation: 'replace', batch: false },
      { schema: 0, start: H(5), operation: 'overwrite' },
      { schema: 0, start: H(5), batch: false },
    ];
    expect(valuesComparableFrom(history(added, 1, [...snaps, ...others]))).toBe(H(3));
  });

  it('only the newest unbroken run of offloads with the current columns counts', () => {
    const snaps = [
      { schema: 1, start: H(1) },
      { schema: 0, start: H(2) },
      { schema: 1, start: H(3) },
    ];
    expect(valuesComparableFrom(history(added, 1, snaps))).toBe(H(3));
  });

  it('reads each snapshot under its own schema among several', () => {
    const twice = {
      ...added,
      2: [
        [1, 'long'],
        [2, 'string'],
        [3, 'double'],
        [4, 'string'],
      ] as [number, string][],
    };
    const snaps = [
      { schema: 1, start: H(1) },
      { schema: 2, start: H(2) },
    ];
    expect(valuesComparableFrom(history(twice, 2, snaps))).toBe(H(2));
    expect(valuesComparableFrom(history(twice, 1, snaps))).toBe('9999-12-31T00:00:00.000Z');
  });

  it('a column widened under the same id is a change too', () => {
    const widened = { 0: [[1, 'int']] as [number, string][], 1: [[1, 'long']] as [number, string][] };
    expect(
      valuesComparableFrom(
        history(widened, 1, [
          { schema: 0, start: H(1) },
          { schema: 1, start: H(2) },
        ]),
      ),
    ).toBe(H(2));
  });

  it('no offload since the change: no hour compares values yet', () => {
    expect(
      valuesComparableFrom(
        history(added, 1, [
          { schema: 0, start: H(1) },
          { schema: 0, start: H(2) },
        ]),
      ),
    ).toBe('9999-12-31T00:00:00.000Z');
  });
});
