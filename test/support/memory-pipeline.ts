import type { ClickHouseClient } from '@clickhouse/client';
import type { OffloadConfig, TableConfig } from '../../src/config/schema.ts';
import { MemoryCatalog } from '../../src/iceberg/memory-catalog.ts';
import { MemoryObjectStore } from '../../src/iceberg/memory-store.ts';
import type { EmfRecord } from '../../src/metrics/emf.ts';
import type { PipelineDeps } from '../../src/pipeline/deps.ts';
import { NO_FAULTS } from '../../src/pipeline/faults.ts';
import { createMemoryWatermarkStore } from '../../src/watermark/memory.ts';
import type { WatermarkStore } from '../../src/watermark/store.ts';
import { fakeClock } from '../watermark/fake-clock.ts';

const microsOf = (ms: number) => String(BigInt(ms) * 1000n);
/** `2026-11-22 05:00:00.000000` (how window bounds reach ClickHouse) -> epoch ms. */
const msOfLiteral = (text: string) => Date.parse(`${text.slice(0, 10)}T${text.slice(11, 23)}Z`);

type Columns = (table: TableConfig) => Array<{ name: string; type: string }>;

/**
 * A ClickHouse whose source tables hold rows at these cursor instants (by source table name), answering
 * what planning and preview ask of it: a table's columns (as configured unless `columns` says otherwise),
 * its oldest row, its rows per bucket in a window. Any other query fails the test, so a new query is
 * noticed rather than answered wrongly.
 */
export function clickhouseHolding(
  rows: Record<string, string[]>,
  tables: TableConfig[],
  columns: Columns = (t) => t.columns,
): ClickHouseClient {
  const query = async ({
    query,
    query_params,
  }: {
    query: string;
    query_params?: Record<string, unknown>;
  }) => {
    const answer = (result: unknown[]) => ({ json: async () => result });
    if (query.includes('system.columns')) {
      const table = tables.find((t) => t.source.table === query_params?.t);
      return answer(table ? columns(table).map(({ name, type }) => ({ name, type })) : []);
    }
    const source = /FROM `?\w+`?\.`?(\w+)`?/.exec(query)?.[1] ?? '';
    const held = (rows[source] ?? []).map((r) => Date.parse(r));
    if (query.startsWith('SELECT min(')) {
      const [lo, hi] = held.length ? [Math.min(...held), Math.max(...held)] : [0, 0];
      return answer([{ lo: microsOf(lo), hi: microsOf(hi), rows: String(held.length) }]);
    }
    const width = /, (\d+)\) \* \d+ AS b/.exec(query)?.[1];
    const [from, to] = [...query.matchAll(/toDateTime64\('([^']+)', 6, 'UTC'\)/g)].map((m) =>
      msOfLiteral(m[1] ?? ''),
    );
    if (width && from !== undefined && to !== undefined) {
      const bucketMs = Number(width) / 1000;
      const counts = new Map<number, number>();
      for (const t of held.filter((t) => t >= from && t < to)) {
        const b = Math.floor(t / bucketMs) * bucketMs;
        counts.set(b, (counts.get(b) ?? 0) + 1);
      }
      return answer(
        [...counts].sort(([a], [b]) => a - b).map(([b, n]) => ({ b: microsOf(b), rows: String(n) })),
      );
    }
    throw new Error(`ClickHouse was asked something unexpected: ${query}`);
  };
  return { query } as unknown as ClickHouseClient;
}

export type MemoryPipelineSetup = {
  config: OffloadConfig;
  /** Every clock's instant: this process's, the source's, the stores'. */
  now: string;
  /** Cursor instants per source table (see clickhouseHolding). */
  rows?: Record<string, string[]>;
  columns?: Columns;
  cycleBudgetSeconds?: number;
};

/**
 * The pipeline's deps on fresh in-memory stores, a warehouse at s3://lake/warehouse, ClickHouse holding
 * `rows`, every clock standing at `now`, each table's watermark created; metrics and log lines kept.
 */
export async function memoryPipeline(setup: MemoryPipelineSetup) {
  const clock = fakeClock(setup.now);
  const watermarks = createMemoryWatermarkStore({ clock: clock.now });
  const store = new MemoryObjectStore(clock.now);
  const catalog = new MemoryCatalog();
  const metrics: EmfRecord[] = [];
  const logged: Array<Record<string, unknown>> = [];
  const deps: PipelineDeps = {
    config: setup.config,
    clickhouse: clickhouseHolding(setup.rows ?? {}, setup.config.tables, setup.columns),
    watermarks,
    catalog,
    store,
    warehouse: 's3://lake/warehouse',
    clock: clock.now,
    sourceClock: async () => clock.now(),
    leaseSeconds: 900,
    cycleBudgetSeconds: setup.cycleBudgetSeconds,
    faults: NO_FAULTS,
    metrics: (r) => metrics.push(...r),
    log: (line) => logged.push(line),
  };
  await watermarks.ensureTables(
    setup.config.tables.map((t) => ({ table: t.name, initialCursor: t.initialCursor })),
  );
  return { deps, watermarks, catalog, store, metrics, logged, clock };
}

/** A watermark moved forward by hand (`watermark set`), as a test's starting point. */
export async function cursorSetTo(watermarks: WatermarkStore, table: string, cursor: string): Promise<void> {
  await watermarks.setCursor({ table, cursor, reason: 'test', actor: 'test', allowBackwards: false });
}

/**
 * As a cycle leaves it: one batch committed from the watermark's cursor to `windowEnd` (its rows in one
 * file), and the table given back.
 */
export async function committedBatch(
  watermarks: WatermarkStore,
  table: string,
  batch: { batchId: string; windowEnd: string; rows?: number },
): Promise<void> {
  const lease = await watermarks.acquireLease(table, 'cycle-a', 900);
  if (!lease.acquired) throw new Error(`${table} is leased by ${lease.holder}`);
  const rows = batch.rows ?? 10;
  await watermarks.advance({
    table,
    batchId: batch.batchId,
    windowStart: (await watermarks.get(table)).cursor,
    windowEnd: batch.windowEnd,
    leaseToken: lease.token,
    rows,
    files: rows > 0 ? 1 : 0,
    bytes: rows > 0 ? 100 : 0,
    durationMs: 1,
    outcome: 'committed',
    releaseLease: true,
  });
}
