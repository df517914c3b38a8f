import { describe, expect, it } from 'vitest';
import { defaultConfig, parseConfig } from '../../src/config/load.ts';
import type { TableConfig } from '../../src/config/schema.ts';
import { serializeTableMetadata } from '../../src/iceberg/metadata.ts';
import { type CyclePreview, previewCycle } from '../../src/pipeline/preview.ts';
import { committedBatch, cursorSetTo, memoryPipeline } from '../support/memory-pipeline.ts';
import { withBatches } from './marker-chain.ts';

const BINANCE = 'bronze_trades_binance';
const KRAKEN = 'bronze_trades_kraken';
const NOW = '2026-11-22T06:00:00.000Z';
const config = parseConfig(
  { tables: defaultConfig().tables.filter((t) => t.name === BINANCE || t.name === KRAKEN) },
  'two bronze tables',
);

const previewing = (
  rows: Record<string, string[]>,
  columns?: (table: TableConfig) => Array<{ name: string; type: string }>,
) => memoryPipeline({ config, now: NOW, rows, ...(columns ? { columns } : {}) });

/** A catalog already pointing BINANCE at metadata whose main branch holds these batches. */
async function withIcebergTable(
  p: Awaited<ReturnType<typeof previewing>>,
  ...windows: Parameters<typeof withBatches>[0]
) {
  const location = `s3://lake/warehouse/cold/${BINANCE}`;
  const metadataLocation = `${location}/metadata/00001-a.metadata.json`;
  const metadata = { ...withBatches(windows), location };
  await p.store.put(metadataLocation, new TextEncoder().encode(serializeTableMetadata(metadata)));
  await p.catalog.createTable({ namespace: 'cold', name: BINANCE }, metadataLocation);
}

const tableOf = (preview: CyclePreview, name: string) => preview.tables.find((t) => t.table === name);

describe('plan: what the next cycle would do, read-only', () => {
  it("estimates each batch's rows from its start up to, not including, its end", async () => {
    const p = await previewing({
      [BINANCE]: [
        '2026-11-22T03:00:00.000Z',
        '2026-11-22T03:59:30.000Z',
        // On the first window's end: the second window's first rows.
        '2026-11-22T04:00:00.000Z',
        '2026-11-22T04:00:30.000Z',
        '2026-11-22T05:54:59.000Z',
      ],
    });
    const binance = tableOf(await previewCycle(p.deps, { tables: [BINANCE] }), BINANCE);
    expect(binance?.batches.map((b) => [b.windowStart, b.windowEnd, b.estimatedRows])).toEqual([
      ['2026-11-22T03:00:00.000Z', '2026-11-22T04:00:00.000Z', 2],
      ['2026-11-22T04:00:00.000Z', '2026-11-22T05:00:00.000Z', 2],
      ['2026-11-22T05:00:00.000Z', '2026-11-22T05:55:00.000Z', 1],
    ]);
    expect(binance?.iceberg).toEqual({ table: `cold.${BINANCE}`, exists: false, newestWindowEnd: null });
  });

  it('shows each table its own batches, and a table not asked for as not selected, with no change', async () => {
    const rows = ['2026-11-22T04:00:00.000Z', '2026-11-22T05:30:00.000Z'];
    const p = await previewing({ [BINANCE]: rows, [KRAKEN]: rows });
    const both = await previewCycle(p.deps);
    for (const name of [BINANCE, KRAKEN]) {
      const batches = tableOf(both, name)?.batches ?? [];
      expect(batches.length).toBeGreaterThan(0);
      expect(batches.map((b) => b.table)).toEqual(batches.map(() => name));
    }
    const kraken = tableOf(await previewCycle(p.deps, { tables: [BINANCE] }), KRAKEN);
    expect(kraken).toMatchObject({ batches: [], schemaChanges: [], skip: { reason: 'not-selected' } });
  });

  it('starts a table Iceberg is ahead of where Iceberg ends, showing the reconcile it would make', async () => {
    const p = await previewing({ [BINANCE]: ['2026-11-22T00:30:00.000Z', '2026-11-22T02:30:00.000Z'] });
    await cursorSetTo(p.watermarks, BINANCE, '2026-11-22T00:00:00.000Z');
    await withIcebergTable(p, ['a'.repeat(32), 0, 2]);
    const binance = tableOf(await previewCycle(p.deps, { tables: [BINANCE] }), BINANCE);
    expect(binance).toMatchObject({
      storedCursor: '2026-11-22T00:00:00.000Z',
      cursor: '2026-11-22T02:00:00.000Z',
      reconcile: {
        from: '2026-11-22T00:00:00.000Z',
        to: '2026-11-22T02:00:00.000Z',
        batchId: 'a'.repeat(32),
      },
      iceberg: { exists: true, newestWindowEnd: '2026-11-22T02:00:00.000Z' },
    });
    expect(binance?.batches[0]?.windowStart).toBe('2026-11-22T02:00:00.000Z');
    // Read-only: the watermark is not moved.
    expect((await p.watermarks.get(BINANCE)).cursor).toBe('2026-11-22T00:00:00.000Z');

    await cursorSetTo(p.watermarks, BINANCE, '2026-11-22T02:00:00.000Z');
    const level = tableOf(await previewCycle(p.deps, { tables: [BINANCE] }), BINANCE);
    expect(level).toMatchObject({ cursor: '2026-11-22T02:00:00.000Z', reconcile: null });
  });

  it('stops a table whose Iceberg lacks the last batch its watermark passed, saying so', async () => {
    const p = await previewing({ [BINANCE]: ['2026-11-22T00:30:00.000Z', '2026-11-22T08:30:00.000Z'] });
    await withIcebergTable(p, ['a'.repeat(32), 0, 2]);
    await committedBatch(p.watermarks, BINANCE, {
      batchId: 'b'.repeat(32),
      windowEnd: '2026-11-22T04:00:00.000Z',
    });
    const binance = tableOf(await previewCycle(p.deps, { tables: [BINANCE] }), BINANCE);
    expect(binance?.skip?.reason).toBe('failed');
    expect(binance?.skip?.detail).toMatch(
      new RegExp(
        `^IcebergBehindError: .*last committed batch ${'b'.repeat(32)} \\(cursor 2026-11-22T04:00:00.000Z\\)`,
      ),
    );
    expect(binance?.batches).toEqual([]);
  });

  it("skips a table another cycle's lease holds until the instant, by the database's clock, that it expires", async () => {
    const p = await previewing({ [KRAKEN]: ['2026-11-22T04:00:00.000Z'] });
    const lease = await p.watermarks.acquireLease(KRAKEN, 'cycle-other', 900);
    const held = tableOf(await previewCycle(p.deps, { tables: [KRAKEN] }), KRAKEN);
    expect(held?.lease).toMatchObject({ holder: 'cycle-other', live: true });
    expect(held?.skip?.reason).toBe('leased');
    expect(held?.batches).toEqual([]);

    p.clock.advance(900);
    expect(p.clock.iso()).toBe(lease.expiresAt);
    const expired = tableOf(await previewCycle(p.deps, { tables: [KRAKEN] }), KRAKEN);
    expect(expired?.lease).toMatchObject({ holder: 'cycle-other', live: false });
    expect(expired?.skip).toBeNull();
    expect(expired?.batches.length).toBeGreaterThan(0);
  });

  it('stops a table whose ClickHouse schema drifted, with the drift as its reason; nothing else to plan is no more passes', async () => {
    const p = await previewing({ [BINANCE]: ['2026-11-22T04:00:00.000Z'] }, (t) =>
      t.columns.map((c, i) => (i === 0 ? { name: c.name, type: 'String' } : c)),
    );
    const preview = await previewCycle(p.deps, { tables: [BINANCE] });
    const binance = tableOf(preview, BINANCE);
    expect(binance?.skip).toMatchObject({ table: BINANCE, reason: 'failed' });
    expect(binance?.skip?.detail).toMatch(/^SchemaDriftError: table bronze_trades_binance: schema drift/);
    expect(binance?.batches).toEqual([]);
    expect(binance?.schemaChanges).toEqual([]);
    expect(preview.more).toBe(false);
  });
});
