import { queryRows } from '../clickhouse/client.ts';
import type { TableConfig } from '../config/schema.ts';
import { ancestry, type TableMetadata } from '../iceberg/metadata.ts';
import { typeString } from '../iceberg/schema.ts';
import { loadTable, MARKER_KEYS } from '../iceberg/table.ts';
import type { EmfRecord } from '../metrics/emf.ts';
import type { PipelineDeps } from '../pipeline/deps.ts';
import type { HourCount, HourlyCheck, HourMismatch, LedgerEntry } from '../watermark/hourly-types.ts';
import { checksValues, clickhouseHours, sumHours } from './sql.ts';

export const HOUR_MS = 3_600_000;
const floorHour = (ms: number) => Math.floor(ms / HOUR_MS) * HOUR_MS;
const ceilHour = (ms: number) => Math.ceil(ms / HOUR_MS) * HOUR_MS;
const iso = (ms: number) => new Date(ms).toISOString();

/**
 * The closed hours of the cursor a check compares: below the cursor's hour, within the look-back, and
 * an hour clear of the hot tier's TTL (older rows may be gone from ClickHouse by design).
 */
export function checkedRange(table: TableConfig, cursor: string, now: Date, lookbackHours: number) {
  const to = floorHour(Date.parse(cursor));
  const ttlStart = ceilHour(now.getTime() - table.ttlSeconds * 1000 + HOUR_MS);
  const from = Math.min(to, Math.max(to - lookbackHours * HOUR_MS, ttlStart));
  return { from: iso(from), to: iso(to) };
}

/**
 * Mismatches of the previous check that now lie below the checked range (older than the look-back) but
 * where ClickHouse still holds the rows (clear of the TTL): they stay reported, so health never turns
 * green over rows that are still missing merely because time passed. A check reaching them again (a
 * repair's, see `lookbackReaching`) replaces them with what it finds.
 */
export function carriedMismatches(
  previous: HourlyCheck | null,
  keptFrom: string,
  from: string,
): HourMismatch[] {
  return (previous?.mismatches ?? []).filter(
    (m) => Date.parse(m.hour) >= Date.parse(keptFrom) && Date.parse(m.hour) < Date.parse(from),
  );
}

/** The look-back (hours below the cursor's hour) that reaches every one of these hours. */
export function lookbackReaching(cursor: string, mismatches: HourMismatch[]): number {
  const to = floorHour(Date.parse(cursor));
  return Math.max(0, ...mismatches.map((m) => Math.ceil((to - Date.parse(m.hour)) / HOUR_MS)));
}

/** Hours of [from, to) lying wholly inside the union of the offload windows the ledger recorded. */
export function coveredHours(entries: LedgerEntry[], from: string, to: string): string[] {
  const windows = entries
    .filter((e) => e.kind === 'offload')
    .map((e) => [Date.parse(e.windowStart), Date.parse(e.windowEnd)] as const)
    .sort((a, b) => a[0] - b[0]);
  const merged: Array<[number, number]> = [];
  for (const [s, e] of windows) {
    const last = merged.at(-1);
    if (last && s <= last[1]) last[1] = Math.max(last[1], e);
    else merged.push([s, e]);
  }
  // The hours are counted first, not stepped through to `to`: a slip in the step cannot loop forever.
  const first = Date.parse(from);
  const count = Math.max(Math.ceil((Date.parse(to) - first) / HOUR_MS), 0);
  return Array.from({ length: count }, (_, i) => first + i * HOUR_MS)
    .filter((h) => merged.some(([s, e]) => s <= h && h + HOUR_MS <= e))
    .map(iso);
}

/**
 * Since when the ledger's value checksums were taken over the columns the config has now: the window
 * start of the oldest offload in the newest unbroken run of offloads written with the current schema's
 * columns (same field ids, same types). A checksum recorded before a column was added, dropped or
 * widened hashes other columns: comparing it would flag every such hour. Those hours compare row counts
 * only. Undefined: every hour compares values (no schema change in the table's offloads).
 */
export function valuesComparableFrom(metadata: TableMetadata): string | undefined {
  const shape = (schemaId: number | undefined) => {
    const s = metadata.schemas.find((x) => x['schema-id'] === schemaId);
    return s ? JSON.stringify(s.fields.map((f) => [f.id, typeString(f.type)]).sort()) : undefined;
  };
  const current = shape(metadata['current-schema-id']);
  let from: string | undefined;
  for (const s of ancestry(metadata)) {
    if (s.summary[MARKER_KEYS.batchId] === undefined || s.summary.operation !== 'append') continue;
    if (shape(s['schema-id']) !== current) return from ?? '9999-12-31T00:00:00.000Z';
    from = s.summary[MARKER_KEYS.windowStart];
  }
  return undefined;
}

async function comparableFrom(deps: PipelineDeps, table: TableConfig): Promise<string | undefined> {
  const ident = { namespace: table.target.namespace, name: table.target.name };
  if ((await deps.catalog.currentMetadataLocation(ident)) === undefined) return undefined;
  return valuesComparableFrom((await loadTable(deps, ident)).metadata);
}

/** Hours where ClickHouse and the ledger disagree on rows or on the value checksum (from `valuesFrom`). */
export function compareHours(
  hours: string[],
  clickhouse: HourCount[],
  committed: HourCount[],
  valuesFrom?: string,
): HourMismatch[] {
  const ch = new Map(clickhouse.map((h) => [h.hour, h]));
  const ledger = new Map(committed.map((h) => [h.hour, h]));
  const out: HourMismatch[] = [];
  for (const hour of hours) {
    const c = ch.get(hour) ?? { hour, rows: 0, checksum: '0' };
    const l = ledger.get(hour) ?? { hour, rows: 0, checksum: '0' };
    const values = valuesFrom === undefined || Date.parse(hour) >= Date.parse(valuesFrom);
    if (c.rows !== l.rows || (values && c.checksum !== l.checksum))
      out.push({
        hour,
        clickhouseRows: c.rows,
        committedRows: l.rows,
        clickhouseChecksum: c.checksum,
        committedChecksum: l.checksum,
      });
  }
  return out;
}

/**
 * One table's per-hour check: ClickHouse's rows (candles: and their values' checksum) per closed hour
 * of the cursor against what the ledger says was committed. Cheap: one grouped count on ClickHouse and
 * one ledger read, no Iceberg scan. The result is stored (health reads it) and returned.
 */
export async function checkTableHours(
  deps: PipelineDeps,
  table: TableConfig,
  options: { lookbackHours?: number } = {},
): Promise<HourlyCheck> {
  const now = deps.clock();
  const w = await deps.watermarks.get(table.name);
  const { from, to } = checkedRange(table, w.cursor, now, options.lookbackHours ?? table.hourlyCheckHours);
  const keptFrom = checkedRange(table, w.cursor, now, Number.POSITIVE_INFINITY).from;
  const carried = carriedMismatches(await deps.watermarks.lastCheck(table.name), keptFrom, from);
  // An empty range (from = to) covers no hour, whatever the ledger answers.
  const entries = await deps.watermarks.ledger(table.name, { from, to });
  const hours = coveredHours(entries, from, to);
  let mismatches: HourMismatch[] = [];
  if (hours.length > 0) {
    const first = hours[0] as string;
    const end = iso(Date.parse(hours.at(-1) as string) + HOUR_MS);
    const clickhouse = await clickhouseHours((sql) => queryRows(deps.clickhouse, sql), table, first, end);
    const committed = sumHours(entries.flatMap((e) => e.hours));
    const valuesFrom = checksValues(table) ? await comparableFrom(deps, table) : undefined;
    mismatches = compareHours(hours, clickhouse, committed, valuesFrom);
  }
  const check: HourlyCheck = {
    table: table.name,
    checkedAt: now.toISOString(),
    from,
    to,
    checkedHours: hours.length,
    mismatches: [...carried, ...mismatches],
  };
  await deps.watermarks.recordCheck(check);
  return check;
}

/** The check's metric: hours whose rows or values differ from what was committed (0 when all agree). */
export function checkRecords(checks: HourlyCheck[], timestamp: number): EmfRecord[] {
  return checks.map((c) => ({
    timestamp,
    dimensions: { Table: c.table },
    values: { hourlyMismatchHours: c.mismatches.length },
  }));
}

/**
 * Every cycle's last step: the per-hour check of each table with a watermark and a look-back. A table
 * whose check fails (ClickHouse or Postgres down) keeps its previous result and is logged; the
 * cycle's outcome is still published.
 */
export async function checkCycleHours(deps: PipelineDeps): Promise<HourlyCheck[]> {
  let known: Set<string>;
  try {
    known = new Set((await deps.watermarks.list()).map((w) => w.table));
  } catch (error) {
    // The cycle's outcome is published regardless; health reports the outage itself.
    deps.log({ event: 'hourly-check-failed', table: '*', message: (error as Error).message });
    return [];
  }
  const checks: HourlyCheck[] = [];
  for (const table of deps.config.tables) {
    if (!known.has(table.name) || table.hourlyCheckHours === 0) continue;
    try {
      const check = await checkTableHours(deps, table);
      checks.push(check);
      if (check.mismatches.length > 0)
        deps.log({ event: 'hourly-mismatch', table: table.name, hours: check.mismatches.slice(0, 5) });
    } catch (error) {
      deps.log({ event: 'hourly-check-failed', table: table.name, message: (error as Error).message });
    }
  }
  deps.metrics(checkRecords(checks, deps.clock().getTime()));
  return checks;
}
