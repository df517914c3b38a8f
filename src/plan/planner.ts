import { LAYERS, type Layer, type TableConfig } from '../config/schema.ts';
import { InputError } from '../errors.ts';
import type { Skip } from '../pipeline/events.ts';
import { type Batch, makeBatch } from './batch.ts';
import { floorTo, formatDuration, formatInstant, formatSpan, parseInstant } from './time.ts';
import { type Histogram, splitWindows } from './windows.ts';

/** Batches one table may get in one pass; the state machine loops back for the rest (`more`). */
export const DEFAULT_MAX_BATCHES_PER_TABLE = 24;

/** A live lease another cycle holds: the table is skipped this pass, not waited on. */
export type LeaseHeld = { table: string; holder: string; expiresAt: string };

/** Estimated rows whose cursor falls in [start, next bucket's start); e.g. a per-minute count. */
export type RowBucket = { start: string; rows: number };

export type PlanInput = {
  /** Every configured table: a pass reads the cursors of upstreams it may not plan itself. */
  config: { readonly tables: readonly TableConfig[] };
  /** Only these tables get batches; the others are reported `not-selected`. Default: all. */
  tables?: readonly string[] | undefined;
  /**
   * Cursor (ISO instant) per table as stored now, upstreams included: rows before it are in the cold
   * tier. A table without an entry has never been offloaded and starts at its `initialCursor`.
   */
  watermarks: Readonly<Record<string, string>>;
  leasedByOthers?: readonly LeaseHeld[] | undefined;
  now: string;
  /** Plan no window past this instant (a console rerun bounding the catch-up). Not after `now`. */
  until?: string | undefined;
  /** Per table, sorted by start: lets a batch hold at most `maxRowsPerBatch` estimated rows. */
  estimates?: Readonly<Record<string, readonly RowBucket[]>> | undefined;
  maxBatchesPerTable?: number | undefined;
};

/** One table's batches of this pass, contiguous and in cursor order. */
export type TableBatches = { table: string; layer: Layer; batches: Batch[] };

/** Tables in layer order (bronze, silver, gold); `more`: a new pass after this one would find work. */
export type PassPlan = { tables: TableBatches[]; skipped: Skip[]; more: boolean };

type Context = {
  ordered: TableConfig[];
  selected: ReadonlySet<string>;
  cursors: ReadonlyMap<string, number>;
  leases: ReadonlyMap<string, LeaseHeld>;
  histograms: ReadonlyMap<string, Histogram>;
  now: number;
  until: number | undefined;
  maxBatches: number;
};

const unknownTable = (field: string, name: string, known: ReadonlyMap<string, unknown>) =>
  new InputError(
    `${field}: unknown table ${JSON.stringify(name)}; configured tables: ${[...known.keys()].join(', ')}`,
    { field, value: name },
  );

function histogramOf(table: string, buckets: readonly RowBucket[]): Histogram {
  const starts: number[] = [];
  const rows: number[] = [];
  buckets.forEach((bucket, i) => {
    const field = `estimates.${table}[${i}]`;
    const start = parseInstant(bucket?.start, `${field}.start`);
    const previous = starts[starts.length - 1];
    if (previous !== undefined && start <= previous)
      throw new InputError(
        `${field}.start: ${bucket.start} is not after the previous bucket's ${formatInstant(previous)}; estimates must be sorted by start without repeats`,
        { field: `${field}.start`, value: bucket.start },
      );
    if (!(Number.isFinite(bucket.rows) && bucket.rows >= 0))
      throw new InputError(`${field}.rows: ${JSON.stringify(bucket.rows)} is not a row count (>= 0)`, {
        field: `${field}.rows`,
        value: bucket.rows,
      });
    starts.push(start);
    rows.push(bucket.rows);
  });
  return { starts, rows };
}

/** Checks every name and instant of the input once, so planning itself cannot meet a bad value. */
function prepare(input: PlanInput): Context {
  const known = new Map<string, TableConfig>();
  for (const table of input.config.tables) {
    if (known.has(table.name))
      throw new InputError(`config.tables: table ${table.name} is configured twice`, {
        field: 'config.tables',
        value: table.name,
      });
    known.set(table.name, table);
  }
  for (const table of known.values())
    for (const dep of table.dependsOn)
      if (!known.has(dep)) throw unknownTable(`table ${table.name}: dependsOn`, dep, known);
  const rank = (t: TableConfig) => LAYERS.indexOf(t.layer);
  const ordered = [...known.values()].sort((a, b) => rank(a) - rank(b));

  for (const name of input.tables ?? []) if (!known.has(name)) throw unknownTable('tables', name, known);
  const selected = new Set(input.tables?.length ? input.tables : known.keys());

  for (const name of Object.keys(input.watermarks))
    if (!known.has(name)) throw unknownTable('watermarks', name, known);
  const cursors = new Map<string, number>();
  for (const table of ordered) {
    const stored = input.watermarks[table.name];
    cursors.set(
      table.name,
      stored === undefined
        ? parseInstant(table.initialCursor, `table ${table.name}: initialCursor`)
        : parseInstant(stored, `watermarks.${table.name}`),
    );
  }

  const leases = new Map<string, LeaseHeld>();
  for (const lease of input.leasedByOthers ?? []) {
    if (!known.has(lease.table)) throw unknownTable('leasedByOthers', lease.table, known);
    leases.set(lease.table, lease);
  }

  const histograms = new Map<string, Histogram>();
  for (const [name, buckets] of Object.entries(input.estimates ?? {})) {
    if (!known.has(name)) throw unknownTable('estimates', name, known);
    histograms.set(name, histogramOf(name, buckets));
  }

  const now = parseInstant(input.now, 'now');
  const until = input.until === undefined ? undefined : parseInstant(input.until, 'until');
  if (until !== undefined && until > now)
    throw new InputError(
      `until: ${input.until} is in the future (now is ${formatInstant(now)}); rows after now do not exist yet, use an instant at or before now or leave until out`,
      { field: 'until', value: input.until },
    );
  const maxBatches = input.maxBatchesPerTable ?? DEFAULT_MAX_BATCHES_PER_TABLE;
  if (!(Number.isInteger(maxBatches) && maxBatches >= 1))
    throw new InputError(`maxBatchesPerTable: ${maxBatches} must be a whole number of at least 1`, {
      field: 'maxBatchesPerTable',
      value: maxBatches,
    });
  return { ordered, selected, cursors, leases, histograms, now, until, maxBatches };
}

type Outcome = { windows: Array<[number, number]>; skip?: Skip['reason']; detail?: string; more: boolean };

function planTable(
  table: TableConfig,
  ctx: Context,
  projected: ReadonlyMap<string, number>,
  notes: ReadonlyMap<string, string>,
): Outcome {
  const cursor = ctx.cursors.get(table.name) as number;
  const unit = table.cursor.kind === 'closed_bucket' ? table.cursor.intervalSeconds * 1000 : undefined;
  // Candle windows end on bucket boundaries; other cursors on whole seconds, readable and never later.
  const endOf = (bound: number) => floorTo(bound, unit ?? 1000);
  const lateness = table.latenessSeconds;
  const late = ctx.now - lateness * 1000;
  const own = Math.min(late, ctx.until ?? Number.POSITIVE_INFINITY);
  const deps = table.dependsOn.map((name) => ({ name, at: ctx.cursors.get(name) as number }));
  const upstream = Math.min(...deps.map((d) => d.at));
  const limit = endOf(Math.min(own, upstream));

  const windows =
    limit > cursor
      ? splitWindows({
          start: cursor,
          end: limit,
          maxSpanMs: table.maxWindowSeconds * 1000,
          unitMs: unit,
          maxRows: table.maxRowsPerBatch,
          histogram: ctx.histograms.get(table.name),
          maxWindows: ctx.maxBatches,
        })
      : [];
  const reach = windows[windows.length - 1]?.[1] ?? cursor;
  // Upstreams run earlier in this pass: where they will be if their batches commit.
  const upstreamNext = Math.min(...deps.map((d) => projected.get(d.name) as number));
  const more = endOf(Math.min(own, upstreamNext)) > reach;
  if (windows.length > 0) return { windows, more };

  const blocks = (bound: number) => endOf(bound) <= cursor;
  const at = formatInstant(cursor);
  const bucketStart = unit ? floorTo(cursor, unit) : cursor;
  const bucketEnd = unit ? bucketStart + unit : cursor;
  const bucket = unit ? `next bucket ${formatSpan(bucketStart, bucketEnd)}` : '';
  if (ctx.until !== undefined && blocks(ctx.until))
    return {
      windows,
      more,
      skip: 'up-to-date',
      detail: unit
        ? `${bucket} ends after until ${formatInstant(ctx.until)}`
        : `cursor ${at} is at or after until ${formatInstant(ctx.until)}`,
    };
  if (blocks(late))
    return unit
      ? {
          windows,
          more,
          skip: 'bucket-open',
          detail: `${bucket} closes at ${formatInstant(bucketEnd + lateness * 1000)} (lateness ${formatDuration(lateness)}); now is ${formatInstant(ctx.now)}`,
        }
      : {
          windows,
          more,
          skip: 'up-to-date',
          detail: `cursor ${at} has reached now minus lateness ${formatDuration(lateness)} (${formatInstant(endOf(late))}); now is ${formatInstant(ctx.now)}`,
        };
  const blockers = deps
    .filter((d) => blocks(d.at))
    .map((d) => `${d.name} at ${formatInstant(d.at)}${notes.get(d.name) ?? ''}`)
    .join(', ');
  return {
    windows,
    more,
    skip: 'waiting-for-upstream',
    detail: unit
      ? `${bucket} needs upstream cursors at ${formatInstant(bucketEnd)} or later: ${blockers}`
      : `cursor ${at} has caught up with upstream ${blockers}`,
  };
}

/**
 * Plans one pass of a cycle: for each selected, unleased table, the batches that move its cursor toward
 * `min(now - lateness, until, upstream cursors)` (candles: to the last closed bucket), in layer order.
 * Pure: the clock and the stored state come in as input.
 */
export function planPass(input: PlanInput): PassPlan {
  const ctx = prepare(input);
  const tables: TableBatches[] = [];
  const skipped: Skip[] = [];
  let more = false;
  const projected = new Map(ctx.cursors);
  // Why an upstream does not move in this pass, for the detail of the tables waiting on it.
  const notes = new Map<string, string>();
  const requested = [...ctx.selected].join(', ');
  for (const table of ctx.ordered) {
    const name = table.name;
    if (!ctx.selected.has(name)) {
      notes.set(name, ' (not selected in this run)');
      skipped.push({
        table: name,
        reason: 'not-selected',
        detail: `not among the requested tables (${requested})`,
      });
      continue;
    }
    const lease = ctx.leases.get(name);
    if (lease) {
      notes.set(name, ` (leased by ${lease.holder})`);
      skipped.push({
        table: name,
        reason: 'leased',
        detail: `leased by ${lease.holder} until ${lease.expiresAt}; skipped in this pass, not waited on`,
      });
      continue;
    }
    const outcome = planTable(table, ctx, projected, notes);
    more ||= outcome.more;
    if (outcome.skip) {
      skipped.push({ table: name, reason: outcome.skip, detail: outcome.detail ?? '' });
      continue;
    }
    const batches = outcome.windows.map(([start, end]) => makeBatch(name, start, end));
    projected.set(name, outcome.windows[outcome.windows.length - 1]?.[1] as number);
    notes.set(name, ' (advances in this pass)');
    tables.push({ table: name, layer: table.layer, batches });
  }
  return { tables, skipped, more };
}
