import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ClickHouseClient } from '@clickhouse/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { countRange, recentMarkers } from '../../src/audit/range.ts';
import { openClickHouse } from '../../src/clickhouse/client.ts';
import { createDemoSchema } from '../../src/clickhouse/demo.ts';
import { defaultConfig, tableByName } from '../../src/config/load.ts';
import type { TableMetadata } from '../../src/iceberg/metadata.ts';
import { MARKER_KEYS } from '../../src/iceberg/table.ts';
import { TEST_NOW } from '../support/clock.ts';

const T = (hh: string) => `2026-01-01T${hh}:00:00.000Z`;

/** Snapshots `ids` in commit order, each the parent of the next; `summary` per id. */
function metadataOf(
  ids: bigint[],
  summary: (id: bigint) => Record<string, string>,
  current = ids.at(-1),
): TableMetadata {
  return {
    'current-snapshot-id': current,
    snapshots: ids.map((id, i) => ({
      'snapshot-id': id,
      'parent-snapshot-id': i === 0 ? undefined : ids[i - 1],
      'timestamp-ms': Date.parse(T('00')) + Number(id) * 60_000,
      summary: { operation: 'append', ...summary(id) },
    })),
  } as unknown as TableMetadata;
}

const marker = (id: bigint) => ({
  [MARKER_KEYS.batchId]: `batch-${id}`,
  [MARKER_KEYS.windowStart]: T(String(Number(id)).padStart(2, '0')),
  [MARKER_KEYS.windowEnd]: T(String(Number(id) + 1).padStart(2, '0')),
  [MARKER_KEYS.rows]: String(Number(id) * 100),
});

/** What `watermark history` shows and a rollback can return to: the offload markers of the table. */
describe('recent offload markers', () => {
  it('lists the markers along the current ancestry, newest first, skipping snapshots without one', () => {
    // Snapshot 3 is a compaction (no marker).
    const m = metadataOf([1n, 2n, 3n, 4n], (id) => (id === 3n ? {} : marker(id)));
    expect(recentMarkers(m, 10)).toEqual([
      {
        snapshotId: '4',
        committedAt: new Date(Date.parse(T('00')) + 4 * 60_000).toISOString(),
        batchId: 'batch-4',
        windowStart: T('04'),
        windowEnd: T('05'),
        rows: 400,
      },
      expect.objectContaining({ snapshotId: '2', batchId: 'batch-2', rows: 200 }),
      expect.objectContaining({ snapshotId: '1', batchId: 'batch-1', rows: 100 }),
    ]);
  });

  it('stops at the limit, counting markers only', () => {
    const m = metadataOf([1n, 2n, 3n, 4n], (id) => (id === 3n ? {} : marker(id)));
    expect(recentMarkers(m, 2).map((e) => e.batchId)).toEqual(['batch-4', 'batch-2']);
    expect(recentMarkers(m, 1).map((e) => e.batchId)).toEqual(['batch-4']);
  });

  it('follows the current snapshot: batches of a rolled-back branch are not listed', () => {
    const m = metadataOf([1n, 2n, 3n], marker, 2n);
    expect(recentMarkers(m, 10).map((e) => e.batchId)).toEqual(['batch-2', 'batch-1']);
  });

  it('shows a marker missing its window or rows as such, not as a made-up value', () => {
    const m = metadataOf([1n], () => ({ [MARKER_KEYS.batchId]: 'bare' }));
    const [entry] = recentMarkers(m, 1);
    expect(entry).toMatchObject({ batchId: 'bare', windowStart: '', windowEnd: '' });
    expect(entry?.rows).toBeNaN();
  });
});

/** The rows a forced `watermark set` leaves out: recorded in the audit trail, so the audit can tell them. */
describe('rows of a range in ClickHouse', () => {
  let dir: string;
  let clickhouse: ClickHouseClient;
  const config = defaultConfig();
  const H = Math.floor(TEST_NOW.getTime() / 3_600_000) * 3_600_000 - 3 * 3_600_000;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'k2-range-'));
    clickhouse = openClickHouse({ dataDir: join(dir, 'chdb') });
    await createDemoSchema(clickhouse);
    // Three trades at H, H + 30 min and H + 1 h, recent enough for the hot tier's TTL to keep them.
    const values = [0, 30, 60]
      .map((m, i) => {
        const at = new Date(H + m * 60_000).toISOString().replace('T', ' ').slice(0, 19);
        return `('${at}', ${i + 1}, 'BTCUSDT', 1, 1, 1, '${at}', ${i + 1}, 0, '${at}')`;
      })
      .join(', ');
    await clickhouse.command({
      query: `INSERT INTO k2.bronze_trades_binance (exchange_timestamp, sequence_number, symbol, price, quantity,
                quote_volume, event_time, kafka_offset, kafka_partition, ingestion_timestamp) VALUES ${values}`,
    });
  });
  afterAll(async () => {
    await clickhouse?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('counts rows whose cursor is in [from, to): the start in, the end out', async () => {
    const table = tableByName(config, 'bronze_trades_binance');
    const at = (minutes: number) => new Date(H + minutes * 60_000).toISOString();
    expect(await countRange(clickhouse, table, at(0), at(60))).toBe(2);
    expect(await countRange(clickhouse, table, at(0), new Date(H + 3_600_001).toISOString())).toBe(3);
    expect(await countRange(clickhouse, table, at(60), at(120))).toBe(1);
    expect(await countRange(clickhouse, table, at(120), at(180))).toBe(0);
  });

  it('counts a re-aggregated table by its groups, as the stager writes them (one candle per minute)', async () => {
    const candles = tableByName(config, 'ohlcv_1m');
    expect(candles.reaggregate).toBeDefined();
    // A second trade in the first minute: two source rows of one candle until the engine merges them.
    const at = new Date(H + 20_000).toISOString().replace('T', ' ').slice(0, 19);
    await clickhouse.command({
      query: `INSERT INTO k2.bronze_trades_binance (exchange_timestamp, sequence_number, symbol, price, quantity,
                quote_volume, event_time, kafka_offset, kafka_partition, ingestion_timestamp)
              VALUES ('${at}', 9, 'BTCUSDT', 2, 1, 2, '${at}', 9, 0, '${at}')`,
    });
    const wide = [new Date(H - 3_600_000).toISOString(), new Date(H + 3 * 3_600_000).toISOString()] as const;
    expect(await countRange(clickhouse, candles, ...wide)).toBe(3);
  });
});
