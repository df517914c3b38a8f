import { assertNoDrift } from '../clickhouse/drift.ts';
import { selectTables } from '../config/load.ts';
import type { Layer, TableConfig } from '../config/schema.ts';
import { SchemaDriftError } from '../errors.ts';
import { identString } from '../iceberg/catalog.ts';
import { evolveMetadata } from '../iceberg/evolve.ts';
import type { TableMetadata } from '../iceberg/metadata.ts';
import { defaultTableLocation } from '../iceberg/new-table.ts';
import { loadTable, newestMarker } from '../iceberg/table.ts';
import type { Batch } from '../plan/batch.ts';
import { type LeaseHeld, planPass, type RowBucket } from '../plan/planner.ts';
import type { Watermark } from '../watermark/types.ts';
import { type PipelineDeps, sourceNow } from './deps.ts';
import type { Skip } from './events.ts';
import { wantedFromConfig } from './evolve-table.ts';
import { firstOffloadStart } from './first-offload.ts';
import { behindBy, behindError, catalogLabel, historyElsewhere, noTwinError } from './history.ts';
import { assertUntilPast, estimateFor, MAX_BATCHES_PER_PASS, targetOf } from './plan-cycle.ts';

export type PreviewBatch = Batch & { estimatedRows: number | null };

export type TablePreview = {
  table: string;
  layer: Layer;
  /** The cursor stored in Postgres; null when the table was never planned (it starts at initialCursor). */
  storedCursor: string | null;
  /** Where the next cycle starts: the stored cursor, or Iceberg's newest marker when that is ahead. */
  cursor: string;
  /** Set on a table's first offload: the cycle moves its cursor up to its oldest row in ClickHouse. */
  firstOffloadFrom: string | null;
  /** Set when Iceberg is ahead of Postgres: the next cycle reconciles the watermark forward first. */
  reconcile: { from: string; to: string; batchId: string } | null;
  iceberg: { table: string; exists: boolean; newestWindowEnd: string | null };
  lease: { holder: string; expiresAt: string; live: boolean } | null;
  /** Schema and partitioning changes the cycle applies to the Iceberg table before its batches. */
  schemaChanges: string[];
  batches: PreviewBatch[];
  skip: Skip | null;
};

export type CyclePreview = {
  now: string;
  until: string | null;
  tables: TablePreview[];
  /** More batches remain after this pass: the cycle would loop back for them. */
  more: boolean;
};

function sumRows(buckets: readonly RowBucket[], start: string, end: string): number {
  const s = Date.parse(start);
  const e = Date.parse(end);
  return buckets.reduce((n, b) => {
    const t = Date.parse(b.start);
    return t >= s && t < e ? n + b.rows : n;
  }, 0);
}

/** The table's newest marker, and why the cycle would stop it (Iceberg behind its watermark), if so. */
async function icebergState(deps: PipelineDeps, table: TableConfig, w: Watermark | undefined) {
  const ident = targetOf(table);
  if ((await deps.catalog.currentMetadataLocation(ident)) === undefined) {
    const location = defaultTableLocation(deps.warehouse, ident);
    const here = { catalog: catalogLabel(deps.catalog), location };
    const stop = historyElsewhere(w, here) ? noTwinError(table, w, here).message : undefined;
    return { table: identString(ident), exists: false, marker: undefined, stop };
  }
  const { metadataLocation, metadata } = await loadTable(deps, ident);
  const gap = w ? behindBy(w, metadata) : undefined;
  const stop = gap ? `IcebergBehindError: ${behindError(table, metadataLocation, gap).message}` : undefined;
  return { table: identString(ident), exists: true, marker: newestMarker(metadata), stop, metadata };
}

/** What the cycle's schema step would do: stop the table (ClickHouse or Iceberg refuses), or evolve it. */
async function schemaState(deps: PipelineDeps, table: TableConfig, metadata: TableMetadata | undefined) {
  try {
    await assertNoDrift(deps.clickhouse, table);
    const changes = metadata ? evolveMetadata(metadata, wantedFromConfig(table)).changes : [];
    return { changes: changes.map((c) => c.detail), stop: undefined };
  } catch (error) {
    if (!(error instanceof SchemaDriftError)) throw error;
    return { changes: [], stop: `${error.name}: ${error.message}` };
  }
}

/**
 * What the next cycle would do, read-only: the same planner on the current watermarks, with Iceberg's
 * newest markers applied as the reconcile step would apply them, and live leases as skips. Nothing is
 * written: no lease taken, no watermark row or Iceberg table created.
 */
export async function previewCycle(
  deps: PipelineDeps,
  options: { tables?: readonly string[] | undefined; until?: string | undefined } = {},
): Promise<CyclePreview> {
  const now = await sourceNow(deps);
  assertUntilPast(options.until, now);
  const selected = selectTables(deps.config, options.tables);
  const stored = new Map((await deps.watermarks.list()).map((w) => [w.table, w]));
  const cursors: Record<string, string> = {};
  const leasedByOthers: LeaseHeld[] = [];
  const facts = new Map<string, Omit<TablePreview, 'batches' | 'skip'>>();

  const selectedNames = new Set(selected.map((t) => t.name));
  const stopped = new Map<string, string>();
  const dbNow = await deps.watermarks.now();
  for (const table of deps.config.tables) {
    const w = stored.get(table.name);
    const storedCursor = w?.cursor ?? null;
    // Leases expire by the database's clock, as the cycle's acquire judges them.
    // Stryker disable next-line BooleanLiteral: `live` is read only beside a lease
    const live = w?.lease ? Date.parse(w.lease.expiresAt) > Date.parse(dbNow) : false;
    // As the cycle does: a watermark that never moved starts at the table's oldest row.
    const start = selectedNames.has(table.name)
      ? await firstOffloadStart(deps, table, w, now.getTime())
      : undefined;
    const firstOffloadFrom = start?.cursor ?? null;
    const base = firstOffloadFrom ?? storedCursor ?? new Date(table.initialCursor).toISOString();
    const ice = await icebergState(deps, table, w);
    const schema = selectedNames.has(table.name)
      ? await schemaState(deps, table, ice.metadata)
      : { changes: [], stop: undefined };
    const stop = ice.stop ?? schema.stop;
    if (stop) stopped.set(table.name, stop);
    const ahead = ice.marker && Date.parse(ice.marker.windowEnd) > Date.parse(base) ? ice.marker : undefined;
    const cursor = ahead ? ahead.windowEnd : base;
    cursors[table.name] = cursor;
    if (w?.lease && live)
      leasedByOthers.push({ table: table.name, holder: w.lease.holder, expiresAt: w.lease.expiresAt });
    facts.set(table.name, {
      table: table.name,
      layer: table.layer,
      storedCursor,
      cursor,
      firstOffloadFrom,
      reconcile: ahead ? { from: base, to: ahead.windowEnd, batchId: ahead.batchId } : null,
      iceberg: { table: ice.table, exists: ice.exists, newestWindowEnd: ice.marker?.windowEnd ?? null },
      lease: w?.lease ? { ...w.lease, live } : null,
      schemaChanges: schema.changes,
    });
  }

  const estimates: Record<string, RowBucket[]> = {};
  const planned = selected.filter((t) => !stopped.has(t.name));
  for (const table of planned) {
    const buckets = await estimateFor(deps, table, cursors[table.name], now);
    if (buckets) estimates[table.name] = buckets;
  }
  // No table left to plan is an empty pass, not "every table" (what planPass takes an empty list for).
  const pass =
    planned.length === 0
      ? { tables: [], skipped: [], more: false }
      : planPass({
          config: deps.config,
          tables: planned.map((t) => t.name),
          watermarks: cursors,
          leasedByOthers,
          now: now.toISOString(),
          until: options.until,
          estimates,
          maxBatchesPerTable: MAX_BATCHES_PER_PASS,
        });

  const tables: TablePreview[] = deps.config.tables.map((table) => {
    const planned = pass.tables.find((t) => t.table === table.name);
    const buckets = estimates[table.name];
    return {
      ...(facts.get(table.name) as Omit<TablePreview, 'batches' | 'skip'>),
      batches: (planned?.batches ?? []).map((b) => ({
        ...b,
        estimatedRows: buckets ? sumRows(buckets, b.windowStart, b.windowEnd) : null,
      })),
      skip: stopped.has(table.name)
        ? { table: table.name, reason: 'failed' as const, detail: stopped.get(table.name) as string }
        : (pass.skipped.find((s) => s.table === table.name) ?? null),
    };
  });
  return { now: now.toISOString(), until: options.until ?? null, tables, more: pass.more };
}
