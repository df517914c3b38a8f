import type { ClickHouseClient } from '@clickhouse/client';
import { describe, expect, it } from 'vitest';
import { defaultConfig, parseConfig } from '../../src/config/load.ts';
import { MarkerMissingError } from '../../src/errors.ts';
import { MemoryCatalog } from '../../src/iceberg/memory-catalog.ts';
import { MemoryObjectStore } from '../../src/iceberg/memory-store.ts';
import { serializeTableMetadata } from '../../src/iceberg/metadata.ts';
import { commitWatermark } from '../../src/pipeline/commit-watermark.ts';
import type { PipelineDeps } from '../../src/pipeline/deps.ts';
import type { BatchSpec, Staged } from '../../src/pipeline/events.ts';
import { NO_FAULTS } from '../../src/pipeline/faults.ts';
import { createMemoryWatermarkStore } from '../../src/watermark/memory.ts';
import { fakeClock } from '../watermark/fake-clock.ts';
import { at, LOCATION, TABLE, withBatches } from './marker-chain.ts';

/**
 * The watermark step on in-memory stores: the cursor moves only over a batch Iceberg holds with the
 * rows that were staged, the batch's hours reach the ledger the per-hour check reads, and the last
 * batch of a pass gives the table back.
 */
const BATCH_ID = 'b'.repeat(32);
const target = { namespace: 'cold', name: TABLE };
const config = parseConfig({ tables: defaultConfig().tables.filter((t) => t.name === TABLE) }, 'one table');

/** This step never reads ClickHouse: any use of the client fails the test. */
const noClickHouse = new Proxy({} as ClickHouseClient, {
  get: (_, name) => {
    throw new Error(`the watermark step used ClickHouse (${String(name)})`);
  },
});

/** A table whose Iceberg metadata holds `windows` and whose watermark is leased at hour 0. */
async function setup(windows: Parameters<typeof withBatches>[0]) {
  const clock = fakeClock(at(2));
  const watermarks = createMemoryWatermarkStore({ clock: clock.now });
  await watermarks.ensureTables([{ table: TABLE, initialCursor: at(0) }]);
  const lease = await watermarks.acquireLease(TABLE, 'cycle-1', 900);
  if (!lease.acquired) throw new Error('expected the lease');
  const store = new MemoryObjectStore(clock.now);
  const catalog = new MemoryCatalog();
  const metadataLocation = `${LOCATION}/metadata/00001-a.metadata.json`;
  await store.put(metadataLocation, new TextEncoder().encode(serializeTableMetadata(withBatches(windows))));
  await catalog.createTable(target, metadataLocation);
  // Time passes while the step runs: each reading of this process's clock is 5 ms after the last.
  let ms = Date.parse(at(2));
  const deps: PipelineDeps = {
    config,
    clickhouse: noClickHouse,
    watermarks,
    catalog,
    store,
    warehouse: 's3://lake/warehouse',
    clock: () => {
      ms += 5;
      return new Date(ms);
    },
    leaseSeconds: 900,
    faults: NO_FAULTS,
    metrics: () => {},
    log: () => {},
  };
  const batch: BatchSpec = {
    cycleId: 'cycle-1',
    table: TABLE,
    layer: 'bronze',
    batchId: BATCH_ID,
    windowStart: at(0),
    windowEnd: at(1),
    leaseToken: lease.token,
    committer: 'lambda',
    target,
    stagingPrefix: `${LOCATION}/data/${BATCH_ID}/`,
    lastOfTable: true,
  };
  return { deps, watermarks, batch };
}

/** What the stager reports for ten rows in two files, all in hour 0. */
const staged: Staged = {
  rows: 10,
  files: [
    { uri: `${LOCATION}/data/${BATCH_ID}/t1-a/part-00000.parquet`, bytes: 300 },
    { uri: `${LOCATION}/data/${BATCH_ID}/t1-a/part-00001.parquet`, bytes: 200 },
  ],
  durationMs: 40,
  hours: [{ hour: at(0), rows: 10, checksum: '0' }],
};

const ledgerOf = (watermarks: PipelineDeps['watermarks']) =>
  watermarks.ledger(TABLE, { from: at(0), to: at(1) });

describe('watermark commit', () => {
  it('moves the cursor over a batch Iceberg holds, records its hours and run, and gives the lease back', async () => {
    const { deps, watermarks, batch } = await setup([[BATCH_ID, 0, 1]]);
    expect(await commitWatermark(deps, { batch, staged })).toEqual({
      result: 'advanced',
      cursor: at(1),
      rows: 10,
    });
    const w = await watermarks.get(TABLE);
    expect([w.cursor, w.lastBatchId, w.lease]).toEqual([at(1), BATCH_ID, null]);
    expect((await ledgerOf(watermarks)).map((e) => [e.batchId, e.kind, e.hours])).toEqual([
      [BATCH_ID, 'offload', staged.hours],
    ]);
    const [run] = await watermarks.history({ table: TABLE, limit: 1 });
    // The stager's time plus this step's own (two clock readings, 5 ms apart).
    expect(run).toMatchObject({ outcome: 'committed', rows: 10, files: 2, bytes: 500, durationMs: 45 });
  });

  it('keeps the lease after a batch that is not the last of its pass', async () => {
    const { deps, watermarks, batch } = await setup([[BATCH_ID, 0, 1]]);
    await commitWatermark(deps, { batch: { ...batch, lastOfTable: false }, staged });
    expect((await watermarks.get(TABLE)).lease?.token).toBe(batch.leaseToken);
  });

  it('stays put when Iceberg has no snapshot for the batch: nothing recorded, the lease kept', async () => {
    const { deps, watermarks, batch } = await setup([['other', 0, 1]]);
    const error = await commitWatermark(deps, { batch, staged }).catch((e) => e);
    expect(error).toBeInstanceOf(MarkerMissingError);
    expect(error.message).toBe(
      `Iceberg cold.${TABLE} has no snapshot for batch ${BATCH_ID}; the commit did not happen, the watermark stays at ${at(0)} and the next cycle retries`,
    );
    const w = await watermarks.get(TABLE);
    expect([w.cursor, w.lease?.token]).toEqual([at(0), batch.leaseToken]);
    expect(await ledgerOf(watermarks)).toEqual([]);
  });

  it('stays put when Iceberg holds the batch with other rows than were staged, naming both counts', async () => {
    const { deps, watermarks, batch } = await setup([[BATCH_ID, 0, 1]]);
    const error = await commitWatermark(deps, { batch, staged: { ...staged, rows: 11 } }).catch((e) => e);
    expect(error).toBeInstanceOf(MarkerMissingError);
    expect(error.message).toBe(
      `Iceberg cold.${TABLE} has batch ${BATCH_ID} with 10 rows, but 11 were staged; the watermark stays at ${at(0)}`,
    );
    expect(error.details).toEqual({ table: TABLE, batchId: BATCH_ID, stagedRows: 11, markerRows: 10 });
    expect((await watermarks.get(TABLE)).cursor).toBe(at(0));
    expect(await ledgerOf(watermarks)).toEqual([]);
  });

  it('moves the cursor over a window without rows, which commits nothing to Iceberg', async () => {
    const { deps, watermarks, batch } = await setup([]);
    const empty = { rows: 0, files: [], durationMs: 3 };
    expect(await commitWatermark(deps, { batch, staged: empty })).toEqual({
      result: 'advanced',
      cursor: at(1),
      rows: 0,
    });
    expect((await watermarks.get(TABLE)).cursor).toBe(at(1));
  });
});
