import { randomBytes } from 'node:crypto';
import { assertNoDrift } from '../clickhouse/drift.ts';
import { rowHistogram } from '../clickhouse/inspect.ts';
import { selectTables } from '../config/load.ts';
import type { TableConfig } from '../config/schema.ts';
import { ConfigError, InputError, InvalidMetadataError, OffloadError } from '../errors.ts';
import { recordReconciledHours } from '../hourly/record.ts';
import { identString, type TableIdent } from '../iceberg/catalog.ts';
import { evolveTable } from '../iceberg/evolve.ts';
import type { TableMetadata } from '../iceberg/metadata.ts';
import { defaultTableLocation } from '../iceberg/new-table.ts';
import { createTable, markersAfter, newestMarker } from '../iceberg/table.ts';
import { type LeaseHeld, planPass, type RowBucket } from '../plan/planner.ts';
import { batchFolder } from '../stage/attempt.ts';
import type { Watermark } from '../watermark/types.ts';
import { icebergDeps, type PipelineDeps, sourceNow } from './deps.ts';
import { type CycleInput, type CyclePlan, cycleInputSchema, type Skip, type TablePlan } from './events.ts';
import { wantedFromConfig } from './evolve-table.ts';
import { startAtOldestRow } from './first-offload.ts';
import { behindBy, behindError, catalogLabel, historyElsewhere, noTwinError } from './history.ts';

export const targetOf = (table: TableConfig): TableIdent => ({
  namespace: table.target.namespace,
  name: table.target.name,
});

/**
 * Batches of one table in one pass. The whole plan travels as Step Functions state (256 KB at most,
 * about 0.5 KB a batch), so a long backlog drains over loop-back passes instead of one huge plan.
 */
export const MAX_BATCHES_PER_PASS = 8;

/** Parses the execution input; a malformed one fails the execution here, before anything is written. */
export function parseCycleInput(raw: unknown): CycleInput {
  const parsed = cycleInputSchema.safeParse(raw ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const path = issue?.path.map(String).join('.') || '(input)';
    const keys = issue && 'keys' in issue && Array.isArray(issue.keys) ? ` (${issue.keys.join(', ')})` : '';
    throw new ConfigError(
      `execution input ${path}: ${issue?.message}${keys}; expected {"tables"?: ["name", ...], "until"?: "ISO-8601 instant"}`,
      { field: path },
    );
  }
  return parsed.data;
}

/** Per-minute row counts of the un-offloaded range, so a backlog splits into batches of bounded rows. */
export async function estimateFor(
  deps: PipelineDeps,
  table: TableConfig,
  from: string | undefined,
  now: Date,
) {
  if (table.cursor.kind !== 'ingestion_time') return undefined;
  if (!from || Date.parse(from) >= now.getTime()) return undefined;
  const buckets = await rowHistogram(deps.clickhouse, table, { from, to: now.toISOString() }, 60);
  // Buckets are aligned to the minute: the first may start before the cursor, though it holds only rows
  // at or after it. It starts at the cursor here, so the window starting there counts its rows (a
  // bucket's rows count in the window holding its start); `plan` showed them missing from that window.
  const fromMs = Date.parse(from);
  // Stryker disable next-line EqualityOperator: a bucket starting at the cursor is clamped to itself
  return buckets.map((b) => (Date.parse(b.start) < fromMs ? { ...b, start: from } : b));
}

/** Errors of one table's metadata, config or data, not an outage: that table fails alone. */
const failsTableAlone = (error: unknown): error is OffloadError =>
  error instanceof OffloadError && !error.retryable;

/**
 * The catalog must point at this table's own metadata: located where the table lives, its markers naming
 * this table. Pointed at another table's metadata, a reconcile would take that table's progress for this
 * one's (skipping rows) and a commit would append this table's rows to the other's.
 */
function checkOwnMetadata(
  table: TableConfig,
  expected: string,
  loaded: { metadataLocation: string; metadata: TableMetadata },
) {
  const ident = identString(targetOf(table));
  const trim = (uri: string) => uri.replace(/\/+$/, '');
  const marker = newestMarker(loaded.metadata);
  const foreign =
    trim(loaded.metadata.location) !== trim(expected)
      ? `describes a table located at ${loaded.metadata.location}, not ${expected}`
      : marker && marker.table !== table.name
        ? `carries offload markers of table ${marker.table} (batch ${marker.batchId})`
        : undefined;
  // No details: the refusal fails this table alone, which keeps its name and message only.
  if (foreign)
    throw new InvalidMetadataError(
      `Iceberg ${ident}: the catalog points at ${loaded.metadataLocation}, which ${foreign}; nothing of ${table.name} is read or written until the catalog points back at this table's own metadata under ${trim(expected)}/metadata/`,
    );
}

/**
 * The table's Iceberg metadata, checked against its watermark before anything is planned: the catalog
 * must point at this table's own metadata, holding the watermark's last batch; a table is created only
 * for a watermark without history elsewhere. Records which catalog and location hold the history.
 * Then, under the table's lease and before any batch is staged, the table is brought to the config
 * (columns added, types widened, renames, drops, a new partition spec) in a metadata-only commit; the
 * ClickHouse table must match the config first, so no Iceberg column is added that nothing can fill.
 */
async function openIcebergTable(deps: PipelineDeps, table: TableConfig, w: Watermark) {
  const ident = targetOf(table);
  const location = defaultTableLocation(deps.warehouse, ident);
  const here = { catalog: catalogLabel(deps.catalog), location };
  await assertNoDrift(deps.clickhouse, table);
  const exists = (await deps.catalog.currentMetadataLocation(ident)) !== undefined;
  if (!exists && historyElsewhere(w, here)) throw noTwinError(table, w, here);
  const loaded = await createTable(icebergDeps(deps), { table: ident, config: table, location });
  checkOwnMetadata(table, location, loaded);
  const gap = behindBy(w, loaded.metadata);
  if (gap) throw behindError(table, loaded.metadataLocation, gap);
  // The store writes the binding only when it changed.
  await deps.watermarks.bindCatalog(table.name, here);
  // A table just created from the config is evolved too: there is nothing to change, and one path serves.
  const evolved = await evolveTable(icebergDeps(deps), ident, wantedFromConfig(table));
  if (evolved.changes.length > 0)
    deps.log({
      event: 'schema-evolved',
      table: table.name,
      changes: evolved.changes.map((c) => c.detail),
      metadataLocation: evolved.metadataLocation,
    });
  return evolved;
}

/** `until` bounds a console rerun; in the future it would offload rows that are not final yet. */
export function assertUntilPast(until: string | undefined, now: Date): void {
  if (until && Date.parse(until) > now.getTime())
    throw new InputError(
      `until ${until} is in the future (now ${now.toISOString()}); rows after now are not final yet, give an instant in the past or omit it`,
      { field: 'until', value: until },
    );
}

/** What a loop-back pass is given again: the operator's own input. */
const carriedInput = (input: CycleInput): CyclePlan['input'] => ({
  ...(input.tables ? { tables: input.tables } : {}),
  ...(input.until ? { until: input.until } : {}),
});

/** Why a loop-back pass must not start: the cycle's time budget is spent. */
function budgetSpent(deps: PipelineDeps, input: CycleInput, now: Date): string | undefined {
  if (!input.cycleId || !input.cycleStartedAt || deps.cycleBudgetSeconds === undefined) return undefined;
  const elapsed = (now.getTime() - Date.parse(input.cycleStartedAt)) / 1000;
  if (elapsed < deps.cycleBudgetSeconds) return undefined;
  return `the cycle has run ${Math.round(elapsed)} s of its ${deps.cycleBudgetSeconds} s budget for passes; the next cycle carries on`;
}

/** A pass that plans nothing, takes no lease and ends the cycle. */
function spentPlan(deps: PipelineDeps, cycleId: string, input: CycleInput, now: Date, detail: string) {
  const tables = selectTables(deps.config, input.tables);
  deps.log({ event: 'time-budget', cycleId, detail });
  return {
    cycleId,
    startedAt: input.cycleStartedAt ?? now.toISOString(),
    input: carriedInput(input),
    layers: [],
    skipped: tables.map((t) => ({ table: t.name, reason: 'time-budget' as const, detail })),
    more: false,
  } satisfies CyclePlan;
}

/** A stage whose secrets still hold the deploy-time placeholder: a pass that plans nothing and says why. */
export function notConfiguredPlan(deps: PipelineDeps, raw: unknown, message: string): CyclePlan {
  const input = parseCycleInput(raw);
  const now = deps.clock();
  deps.log({ level: 'warn', event: 'not-configured', message });
  return {
    cycleId: input.cycleId ?? `cycle-${now.toISOString().replace(/[:.]/g, '-')}-not-configured`,
    startedAt: input.cycleStartedAt ?? now.toISOString(),
    input: carriedInput(input),
    layers: [],
    skipped: [],
    more: false,
  };
}

/**
 * Step 1 and 2 of the protocol for one pass: take the leases, reconcile Postgres with Iceberg (forward
 * only), then plan bounded batches from the watermarks. Tables with nothing to do are released at once.
 */
export async function planCycle(deps: PipelineDeps, raw: unknown): Promise<CyclePlan> {
  const input = parseCycleInput(raw);
  // This process's clock names the cycle and times its budget (elapsed time, which a skew cancels out of).
  const started = deps.clock();
  const requested = selectTables(deps.config, input.tables);
  const cycleId =
    input.cycleId ?? `cycle-${started.toISOString().replace(/[:.]/g, '-')}-${randomBytes(3).toString('hex')}`;
  const firstPass = input.cycleId === undefined;
  const spent = budgetSpent(deps, input, started);
  if (spent) return spentPlan(deps, cycleId, input, started, spent);
  // Window bounds by the source's clock: rows get their ingestion time from it, not from ours.
  const now = await sourceNow(deps);
  assertUntilPast(input.until, now);

  await deps.watermarks.ensureTables(
    deps.config.tables.map((t) => ({ table: t.name, initialCursor: t.initialCursor })),
  );
  // A loop-back pass does not retry a table that failed earlier in this cycle: the next cycle will.
  const failed = firstPass
    ? new Set<string>()
    : new Set((await deps.watermarks.list()).filter((w) => w.status === 'failed').map((w) => w.table));
  const selected = requested.filter((t) => !failed.has(t.name));

  await startAtOldestRow(deps, selected, now.getTime());

  const tokens = new Map<string, string>();
  const leasedByOthers: LeaseHeld[] = [];

  const planFailures: Skip[] = [];
  const failTable = async (table: TableConfig, token: string, error: OffloadError) => {
    tokens.delete(table.name);
    const message = error.message;
    await deps.watermarks.recordFailure({
      table: table.name,
      leaseToken: token,
      error: { name: error.name, message },
      durationMs: 0,
    });
    planFailures.push({
      table: table.name,
      reason: 'failed',
      detail: `${error.name}: ${message}`.slice(0, 1000),
    });
    deps.metrics([
      {
        timestamp: started.getTime(),
        dimensions: { Table: table.name, ErrorType: error.name },
        values: { errors: 1 },
        properties: { cycleId, message: message.slice(0, 500) },
      },
    ]);
    deps.log({ event: 'table-failed', step: 'PlanCycle', table: table.name, error: error.name, message });
  };

  let plans: TablePlan[];
  let pass: ReturnType<typeof planPass>;
  try {
    // Inside the try: a store failing at the fifth table gives back the four leases already taken.
    for (const table of selected) {
      const lease = await deps.watermarks.acquireLease(table.name, cycleId, deps.leaseSeconds);
      if (lease.acquired) tokens.set(table.name, lease.token);
      else leasedByOthers.push({ table: table.name, holder: lease.holder, expiresAt: lease.expiresAt });
    }
    // Iceberg is the truth: a crash after its commit and before the watermark is repaired here.
    const locations = new Map<string, string>();
    for (const table of selected) {
      const token = tokens.get(table.name);
      if (!token) continue;
      try {
        const current = await deps.watermarks.get(table.name);
        const { metadata } = await openIcebergTable(deps, table, current);
        locations.set(table.name, metadata.location);
        const marker = newestMarker(metadata);
        if (marker && current && Date.parse(marker.windowEnd) > Date.parse(current.cursor)) {
          // Their ledger entries first: once the cursor has moved, nothing would write them any more.
          await recordReconciledHours(deps, markersAfter(metadata, current.cursor));
          await deps.watermarks.reconcile({
            table: table.name,
            batchId: marker.batchId,
            windowEnd: marker.windowEnd,
            rows: marker.rows,
            leaseToken: token,
            note: `Iceberg ${identString(targetOf(table))} snapshot ${marker.snapshotId} carries batch ${marker.batchId} ending ${marker.windowEnd}`,
          });
          deps.log({ event: 'reconciled', table: table.name, from: current.cursor, to: marker.windowEnd });
        }
      } catch (error) {
        if (!failsTableAlone(error)) throw error;
        await failTable(table, token, error);
      }
    }

    const watermarks = Object.fromEntries((await deps.watermarks.list()).map((w) => [w.table, w.cursor]));
    const estimates: Record<string, RowBucket[]> = {};
    for (const table of selected) {
      const token = tokens.get(table.name);
      if (!token) continue;
      try {
        const buckets = await estimateFor(deps, table, watermarks[table.name], now);
        if (buckets) estimates[table.name] = buckets;
      } catch (error) {
        if (!failsTableAlone(error)) throw error;
        await failTable(table, token, error);
      }
    }
    const failedNow = new Set(planFailures.map((f) => f.table));
    const remaining = selected.filter((t) => !failedNow.has(t.name)).map((t) => t.name);
    pass =
      remaining.length === 0
        ? { tables: [], skipped: [], more: false }
        : planPass({
            config: deps.config,
            tables: remaining,
            watermarks,
            leasedByOthers,
            now: now.toISOString(),
            ...(input.until ? { until: input.until } : {}),
            estimates,
            maxBatchesPerTable: MAX_BATCHES_PER_PASS,
          });
    // A table that failed here is reported as failed, not as "not selected".
    pass = { ...pass, skipped: [...pass.skipped.filter((s) => !failedNow.has(s.table)), ...planFailures] };

    const byName = new Map(deps.config.tables.map((t) => [t.name, t]));
    plans = [];
    // planPass lists a table here only with batches; a table with none is among its skips.
    for (const { table: name, layer, batches } of pass.tables) {
      const token = tokens.get(name);
      const table = byName.get(name);
      const location = locations.get(name);
      if (!token || !table || !location) continue;
      plans.push({
        table: name,
        layer,
        leaseToken: token,
        batches: batches.map((b, i) => ({
          cycleId,
          table: name,
          layer,
          batchId: b.batchId,
          windowStart: b.windowStart,
          windowEnd: b.windowEnd,
          leaseToken: token,
          committer: table.committer,
          target: targetOf(table),
          stagingPrefix: batchFolder(location, b.batchId),
          lastOfTable: i === batches.length - 1,
        })),
      });
    }
    const withWork = new Set(plans.map((p) => p.table));
    for (const [name, token] of tokens) {
      if (withWork.has(name)) continue;
      const reason = pass.skipped.find((s) => s.table === name);
      await deps.watermarks.recordNoop({
        table: name,
        leaseToken: token,
        reason: reason?.detail ?? 'nothing to offload',
      });
      await deps.watermarks.releaseLease(name, token);
    }
  } catch (error) {
    // A plan that fails once it holds leases gives them back: its retry runs under a new cycle id, and
    // leases left behind would make that retry skip every table until they expire.
    await Promise.all(
      [...tokens].map(([name, token]) => deps.watermarks.releaseLease(name, token).catch(() => undefined)),
    );
    throw error;
  }

  if (firstPass)
    deps.metrics([{ timestamp: started.getTime(), values: { cyclesStarted: 1 }, properties: { cycleId } }]);
  const layers = (['bronze', 'silver', 'gold'] as const)
    .map((layer) => ({ layer, tables: plans.filter((p) => p.layer === layer) }))
    .filter((l) => l.tables.length > 0);
  const plan: CyclePlan = {
    cycleId,
    startedAt: input.cycleStartedAt ?? started.toISOString(),
    input: carriedInput(input),
    layers,
    skipped: pass.skipped,
    more: pass.more,
  };
  deps.faults.hit('after-plan', { table: plans[0]?.table ?? '*' });
  return plan;
}
