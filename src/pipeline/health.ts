import { stat } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { pendingRows, ttlHeadroom } from '../clickhouse/inspect.ts';
import type { Layer, TableConfig } from '../config/schema.ts';
import { hourlyProblems } from '../hourly/health.ts';
import { identString } from '../iceberg/catalog.ts';
import { defaultTableLocation } from '../iceberg/new-table.ts';
import { loadTable, newestMarker } from '../iceberg/table.ts';
import type { EmfRecord } from '../metrics/emf.ts';
import { floorTo } from '../plan/time.ts';
import type { Watermark } from '../watermark/types.ts';
import type { PipelineDeps } from './deps.ts';
import { behindBy, catalogLabel, historyElsewhere } from './history.ts';
import { targetOf } from './plan-cycle.ts';

/** The alarm thresholds (lib/stage-config.ts defaults): the check and the alarms agree on what is wrong. */
export type HealthThresholds = {
  lagCriticalMinutes: number;
  lagWarningMinutes: number;
  consecutiveFailures: number;
  watermarkStaleSeconds: number;
  ttlHeadroomHours: number;
};
export const DEFAULT_THRESHOLDS: HealthThresholds = {
  lagCriticalMinutes: 30,
  lagWarningMinutes: 20,
  consecutiveFailures: 3,
  watermarkStaleSeconds: 3600,
  ttlHeadroomHours: 24,
};

export type Severity = 'critical' | 'warning';
export type Problem = { severity: Severity; table: string | null; code: string; message: string };
export type ComponentName = 'clickhouse' | 'postgres' | 'catalog';
export type ComponentHealth = { name: ComponentName; ok: boolean; ms: number; detail: string };

export type TableHealth = {
  table: string;
  layer: Layer;
  cursor: string | null;
  /** Minutes the cursor is behind the newest instant it could reach (now - lateness; candles: the last closed bucket). */
  lagMinutes: number | null;
  /** Seconds since the table last completed a pass (a commit, or a check that found nothing to do). */
  watermarkAgeSeconds: number | null;
  lastSuccessAt: string | null;
  lastCheckedAt: string | null;
  status: string | null;
  consecutiveFailures: number | null;
  lastError: { name: string; message: string } | null;
  /** `live` by the database's clock; an expired lease not released is stale (its holder died or hung). */
  lease: {
    holder: string;
    expiresAt: string;
    live: boolean;
    host: string | null;
    pid: number | null;
    startedAt: string | null;
  } | null;
  /** Rows in ClickHouse at or after the cursor (for candles: partial rows), and the oldest one's cursor. */
  pendingRows: number | null;
  oldestPending: string | null;
  /** Hours until the hot tier's TTL deletes the oldest row not yet in Iceberg (the TTL when none waits). */
  ttlHeadroomHours: number | null;
  iceberg: {
    table: string;
    exists: boolean | null;
    newestWindowEnd: string | null;
    newestBatchId: string | null;
    /** Why Iceberg lacks what the watermark passed (a catalog moved back or switched); null when it holds it. */
    behind: string | null;
  };
};

export type HealthReport = {
  checkedAt: string;
  healthy: boolean;
  components: ComponentHealth[];
  tables: TableHealth[];
  problems: Problem[];
};

class Timeout extends Error {}

async function timed<T>(
  ms: number,
  what: () => Promise<T>,
): Promise<{ value?: T; error?: string; ms: number }> {
  const started = Date.now();
  let timer: NodeJS.Timeout | undefined;
  try {
    const value = await Promise.race([
      what(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Timeout(`no answer within ${ms / 1000} s`)), ms);
      }),
    ]);
    return { value, ms: Date.now() - started };
  } catch (error) {
    return { error: (error as Error).message.split('\n')[0] ?? String(error), ms: Date.now() - started };
  } finally {
    clearTimeout(timer);
  }
}

/** The newest instant a table's cursor can reach now: now - lateness, on a bucket boundary for candles. */
export function reachableBound(table: TableConfig, now: Date): number {
  const unit = table.cursor.kind === 'closed_bucket' ? table.cursor.intervalSeconds * 1000 : 1000;
  return floorTo(now.getTime() - table.latenessSeconds * 1000, unit);
}

/** What is wrong with one table, from its facts: each problem with its severity, code and what to do. */
export function tableProblems(t: TableHealth, table: TableConfig, th: HealthThresholds): Problem[] {
  const out: Problem[] = [];
  const add = (severity: Severity, code: string, message: string) =>
    out.push({ severity, table: t.table, code, message });
  if (t.lagMinutes !== null) {
    if (t.lagMinutes > th.lagCriticalMinutes)
      add('critical', 'lag', `lag ${t.lagMinutes} min is over ${th.lagCriticalMinutes} min`);
    else if (t.lagMinutes > th.lagWarningMinutes)
      add('warning', 'lag', `lag ${t.lagMinutes} min is over ${th.lagWarningMinutes} min`);
  }
  const failures = t.consecutiveFailures ?? 0;
  // Whole: the what-to-do is at the end of our messages (the text output wraps or clips it, --json not).
  const last = t.lastError ? `: ${t.lastError.name}: ${t.lastError.message}` : '';
  // A schema the offload refuses does not heal by retrying: red from the first failure.
  if (failures > 0 && t.lastError?.name === 'SchemaDriftError')
    add(
      'critical',
      'schema',
      `the table is stopped by a schema change: ${t.lastError.message.replace(/\s*\n\s*/g, ' ')} (docs/runbooks/schema-changes.md)`,
    );
  else if (failures >= th.consecutiveFailures)
    add('critical', 'failures', `${failures} failed passes in a row${last}`);
  else if (failures > 0) add('warning', 'failures', `${failures} failed pass(es) in a row${last}`);
  if (t.cursor !== null && t.watermarkAgeSeconds === null)
    add('critical', 'never-run', 'no pass has completed yet; run a cycle (k2-offload run)');
  else if (t.watermarkAgeSeconds !== null && t.watermarkAgeSeconds > th.watermarkStaleSeconds)
    add(
      'critical',
      'stale',
      `last completed pass ${Math.round(t.watermarkAgeSeconds / 60)} min ago (over ${th.watermarkStaleSeconds / 60} min)`,
    );
  if (t.ttlHeadroomHours !== null && t.ttlHeadroomHours < th.ttlHeadroomHours)
    add(
      'critical',
      'ttl',
      `oldest row not in Iceberg is deleted by the ${table.ttlSeconds / 86400}-day TTL in ${t.ttlHeadroomHours} h`,
    );
  if (t.lease && !t.lease.live)
    add(
      'critical',
      'lease-stale',
      `lease of ${describeHolder(t.lease)} expired at ${t.lease.expiresAt} and was never released: its holder died or hangs. The next cycle takes it over; if the holder is gone, k2-offload watermark release --table ${t.table} --reason "..."`,
    );
  if (t.iceberg.behind)
    add(
      'critical',
      'iceberg-behind',
      `${t.iceberg.behind}; the table is stopped: k2-offload watermark rewind --table ${t.table} --reason "..." (docs/runbooks/iceberg-behind.md)`,
    );
  const ahead =
    t.iceberg.newestWindowEnd && t.cursor && Date.parse(t.iceberg.newestWindowEnd) > Date.parse(t.cursor);
  // While a cycle holds the lease, a commit not yet recorded in the watermark is the protocol at work.
  if (ahead)
    add(
      t.lease?.live ? 'warning' : 'critical',
      'iceberg-ahead',
      `Iceberg holds rows up to ${t.iceberg.newestWindowEnd} (batch ${t.iceberg.newestBatchId}), past the watermark ${t.cursor}; the next cycle reconciles`,
    );
  return out;
}

export const describeHolder = (lease: { holder: string; host: string | null; pid: number | null }) =>
  `${lease.holder}${lease.host ? ` (${lease.host} pid ${lease.pid})` : ''}`;

/** A missing table is behind too when the watermark's history was committed elsewhere. */
function missingWithHistory(
  deps: PipelineDeps,
  table: TableConfig,
  w: Watermark | undefined,
  found: unknown,
): string | null {
  if (found !== undefined) return null;
  const here = {
    catalog: catalogLabel(deps.catalog),
    location: defaultTableLocation(deps.warehouse, targetOf(table)),
  };
  if (!historyElsewhere(w, here)) return null;
  const there = w.iceberg ? ` (history in the ${w.iceberg.catalog} catalog at ${w.iceberg.location})` : '';
  return `the ${here.catalog} catalog has no table at ${here.location}, but the watermark has passed committed batches${there}`;
}

/** A table's facts from its watermark row alone (the row counts and Iceberg's are filled in after). */
export function tableFacts(
  table: TableConfig,
  w: Watermark | undefined,
  now: Date,
  dbNow: Date,
): TableHealth {
  const seen = [w?.lastSuccessAt, w?.lastCheckedAt].filter((v): v is string => !!v).map(Date.parse);
  const round1 = (n: number) => Math.round(n * 10) / 10;
  return {
    table: table.name,
    layer: table.layer,
    cursor: w?.cursor ?? null,
    lagMinutes: w ? round1(Math.max(0, reachableBound(table, now) - Date.parse(w.cursor)) / 60_000) : null,
    watermarkAgeSeconds: seen.length ? Math.round((now.getTime() - Math.max(...seen)) / 1000) : null,
    lastSuccessAt: w?.lastSuccessAt ?? null,
    lastCheckedAt: w?.lastCheckedAt ?? null,
    status: w?.status ?? null,
    consecutiveFailures: w?.consecutiveFailures ?? null,
    lastError: w?.lastError ?? null,
    lease: w?.lease
      ? {
          holder: w.lease.holder,
          expiresAt: w.lease.expiresAt,
          live: Date.parse(w.lease.expiresAt) > dbNow.getTime(),
          host: w.lease.host,
          pid: w.lease.pid,
          startedAt: w.lease.startedAt,
        }
      : null,
    pendingRows: null,
    oldestPending: null,
    ttlHeadroomHours: null,
    iceberg: {
      table: identString(targetOf(table)),
      exists: null,
      newestWindowEnd: null,
      newestBatchId: null,
      behind: null,
    },
  };
}

/**
 * The 30-second health check, for people (`k2-offload status`) and for the health function: each
 * component probed with a time limit, then per table the watermark, lag, failures, lease, TTL headroom
 * and the newest Iceberg marker. Read-only. `healthy` is false when any problem is critical.
 */
export async function collectHealth(
  deps: PipelineDeps,
  options: { thresholds?: Partial<HealthThresholds>; timeoutMs?: number } = {},
): Promise<HealthReport> {
  const th = { ...DEFAULT_THRESHOLDS, ...options.thresholds };
  const limit = options.timeoutMs ?? 10_000;
  const now = deps.clock();
  const problems: Problem[] = [];
  const components: ComponentHealth[] = [];
  const component = (name: ComponentName, r: { error?: string; ms: number }, ok: string) => {
    components.push({ name, ok: !r.error, ms: r.ms, detail: r.error ?? ok });
    if (r.error)
      problems.push({
        severity: 'critical',
        table: null,
        code: `${name}-down`,
        message: `${name}: ${r.error}`,
      });
    return !r.error;
  };

  const ch = await timed(limit, async () => {
    const r = await deps.clickhouse.ping({ select: true });
    if (!r.success) throw r.error;
  });
  const chUp = component('clickhouse', ch, 'answers SELECT 1');
  const pg = await timed(limit, async () => ({
    rows: await deps.watermarks.list(),
    // Leases expire by the database's clock, the one that grants them.
    now: new Date(await deps.watermarks.now()),
  }));
  const pgUp = component('postgres', pg, `${pg.value?.rows.length ?? 0} watermark rows`);
  const byTable = new Map((pg.value?.rows ?? []).map((w) => [w.table, w]));
  const dbNow = pg.value?.now ?? now;
  const tables = deps.config.tables.map((t) => tableFacts(t, byTable.get(t.name), now, dbNow));

  let catalogError = await warehouseFolderProblem(deps.warehouse);
  let catalogMs = 0;
  for (const [i, table] of deps.config.tables.entries()) {
    const facts = tables[i] as TableHealth;
    if (!catalogError) {
      const r = await timed(limit, async () => {
        const ident = targetOf(table);
        if ((await deps.catalog.currentMetadataLocation(ident)) === undefined) return undefined;
        const { metadata } = await loadTable(deps, ident);
        const w = byTable.get(table.name);
        return { marker: newestMarker(metadata), behind: w ? (behindBy(w, metadata) ?? null) : null };
      });
      catalogMs += r.ms;
      if (r.error) catalogError = `${facts.iceberg.table}: ${r.error}`;
      else {
        facts.iceberg.exists = r.value !== undefined;
        facts.iceberg.newestWindowEnd = r.value?.marker?.windowEnd ?? null;
        facts.iceberg.newestBatchId = r.value?.marker?.batchId ?? null;
        facts.iceberg.behind =
          r.value?.behind ?? missingWithHistory(deps, table, byTable.get(table.name), r.value);
      }
    }
    if (chUp && pgUp && facts.cursor !== null) {
      const r = await timed(limit, () => pendingRows(deps.clickhouse, table, facts.cursor as string));
      if (r.value) {
        facts.pendingRows = r.value.rows;
        facts.oldestPending = r.value.oldest ?? null;
        const { headroomSeconds } = ttlHeadroom(table, r.value, now);
        facts.ttlHeadroomHours = Math.round((headroomSeconds / 3600) * 10) / 10;
        // A watermark that never moved sits at the initial cursor (1970): behind is its oldest row.
        const w = byTable.get(table.name);
        if (w && w.version === 0) {
          const behind = r.value.oldest ? reachableBound(table, now) - Date.parse(r.value.oldest) : 0;
          facts.lagMinutes = Math.round((Math.max(0, behind) / 60_000) * 10) / 10;
        }
      } else
        problems.push({
          severity: 'warning',
          table: table.name,
          code: 'clickhouse-query',
          message: `pending rows not counted: ${r.error}`,
        });
    }
    if (pgUp && !byTable.has(table.name))
      problems.push({
        severity: 'warning',
        table: table.name,
        code: 'no-watermark',
        message: 'no watermark row yet: the first cycle creates it at the initial cursor',
      });
    problems.push(...tableProblems(facts, table, th));
    if (pgUp) problems.push(...(await hourlyProblems(deps, table)));
  }
  component(
    'catalog',
    { ms: catalogMs, ...(catalogError ? { error: catalogError } : {}) },
    `${deps.catalog.kind} catalog and warehouse files readable`,
  );
  return {
    checkedAt: now.toISOString(),
    healthy: !problems.some((p) => p.severity === 'critical'),
    components,
    tables,
    problems,
  };
}

/** A local warehouse must be a folder (or not exist yet): a file there is no warehouse at all. */
async function warehouseFolderProblem(warehouse: string): Promise<string | undefined> {
  if (!warehouse.startsWith('file://')) return undefined;
  const path = fileURLToPath(warehouse);
  const found = await stat(path).catch(() => undefined);
  if (found && !found.isDirectory())
    return `warehouse ${path} is a file, not a folder: point WAREHOUSE at a folder (or s3://bucket/prefix)`;
  return undefined;
}

/** The per-table health metrics the health function publishes (the alarms watch them). */
export function healthRecords(report: HealthReport): EmfRecord[] {
  const timestamp = Date.parse(report.checkedAt);
  return report.tables.map((t) => ({
    timestamp,
    dimensions: { Table: t.table },
    values: {
      ...(t.lagMinutes !== null ? { lagMinutes: t.lagMinutes } : {}),
      ...(t.watermarkAgeSeconds !== null ? { watermarkAgeSeconds: t.watermarkAgeSeconds } : {}),
      ...(t.ttlHeadroomHours !== null ? { ttlHeadroomHours: t.ttlHeadroomHours } : {}),
      ...(t.consecutiveFailures !== null ? { consecutiveFailures: t.consecutiveFailures } : {}),
      ...(t.iceberg.exists !== null || t.iceberg.behind ? { icebergBehind: t.iceberg.behind ? 1 : 0 } : {}),
    },
  }));
}
