import type { ClickHouseClient } from '@clickhouse/client';
import type { TableConfig } from '../config/schema.ts';
import { InputError } from '../errors.ts';
import { toInstant } from '../plan/batch.ts';
import { stagingSelect } from '../stage/select.ts';
import { queryRows } from './client.ts';
import { ident, instantFromMicros, instantLiteral, qualifiedName } from './sql.ts';

type Window = { from: string | Date; to: string | Date };

function windowSql(table: TableConfig, window: Window): string {
  const from = toInstant(window.from, 'from');
  const to = toInstant(window.to, 'to');
  if (Date.parse(from) > Date.parse(to))
    throw new InputError(`window of ${table.name} is inverted: ${from} is after ${to}`, { from, to });
  const cursor = ident(table.cursor.column, 'cursor column');
  return `${cursor} >= ${instantLiteral(from)} AND ${cursor} < ${instantLiteral(to)}`;
}

export type Bucket = { start: string; rows: number };

/**
 * Rows per cursor bucket (epoch-aligned, `bucketSeconds` wide) in `[from, to)`, empty buckets left out.
 * `measure: 'rows'` counts stored rows (the planner's cost estimate); `'offloaded'` counts what a batch
 * writes: for re-aggregated tables one row per group (candle), however many partial rows it has.
 */
export async function rowHistogram(
  client: ClickHouseClient,
  table: TableConfig,
  window: Window,
  bucketSeconds: number,
  measure: 'rows' | 'offloaded' = 'rows',
): Promise<Bucket[]> {
  if (!Number.isInteger(bucketSeconds) || bucketSeconds <= 0)
    throw new InputError(`bucketSeconds must be a positive whole number, got ${bucketSeconds}`, {
      bucketSeconds,
    });
  const cursor = ident(table.cursor.column, 'cursor column');
  const width = bucketSeconds * 1_000_000;
  const groups = table.reaggregate?.groupBy.map((g) => ident(g, 'column'));
  const count = measure === 'offloaded' && groups ? `uniqExact(${groups.join(', ')})` : 'count()';
  const rows = await queryRows<{ b: string; rows: string }>(
    client,
    `SELECT intDiv(toUnixTimestamp64Micro(toDateTime64(${cursor}, 6, 'UTC')), ${width}) * ${width} AS b, ${count} AS rows
     FROM ${qualifiedName(table.source.database, table.source.table)} WHERE ${windowSql(table, window)}
     GROUP BY b ORDER BY b`,
  );
  return rows.map((r) => ({ start: instantFromMicros(r.b), rows: Number(r.rows) }));
}

/** Offloaded-row counts per hour of the cursor, to compare with the Iceberg table hour by hour. */
export function hourlyCounts(
  client: ClickHouseClient,
  table: TableConfig,
  window: Window,
): Promise<Bucket[]> {
  return rowHistogram(client, table, window, 3600, 'offloaded');
}

export type Duplicates = {
  /** Natural keys that occur more than once among the rows a batch of this window would offload. */
  keys: number;
  /** Rows beyond the first of each duplicated key. */
  extraRows: number;
  examples: Array<{ key: Record<string, string>; copies: number }>;
};

/** Duplicate natural keys among the rows the window offloads (after re-aggregation, for candle tables). */
export async function duplicateKeys(
  client: ClickHouseClient,
  table: TableConfig,
  window: Window,
  limit = 10,
): Promise<Duplicates> {
  windowSql(table, window);
  const select = stagingSelect(table, toInstant(window.from), toInstant(window.to));
  const keys = table.naturalKey.map((k) => ident(k, 'natural key column'));
  const grouped = `SELECT ${keys.map((k) => `toString(${k}) AS ${k}`).join(', ')}, count() AS copies
    FROM (${select}) GROUP BY ${keys.join(', ')} HAVING copies > 1`;
  const [summary] = await queryRows<{ keys: string; extra: string }>(
    client,
    `SELECT count() AS keys, sum(copies - 1) AS extra FROM (${grouped})`,
  );
  const examples = await queryRows<Record<string, string>>(
    client,
    `${grouped} ORDER BY copies DESC, ${keys.join(', ')} LIMIT ${Math.max(0, Math.trunc(limit))}`,
  );
  return {
    keys: Number(summary?.keys ?? 0),
    extraRows: Number(summary?.extra ?? 0),
    examples: examples.map(({ copies, ...key }) => ({ key, copies: Number(copies) })),
  };
}

export type CursorRange = { min: string; max: string; rows: number };

/** Oldest and newest cursor value in the table; undefined when it is empty. */
export async function cursorRange(
  client: ClickHouseClient,
  table: TableConfig,
): Promise<CursorRange | undefined> {
  const cursor = `toUnixTimestamp64Micro(toDateTime64(${ident(table.cursor.column, 'cursor column')}, 6, 'UTC'))`;
  const [row] = await queryRows<{ lo: string; hi: string; rows: string }>(
    client,
    `SELECT min(${cursor}) AS lo, max(${cursor}) AS hi, count() AS rows FROM ${qualifiedName(table.source.database, table.source.table)}`,
  );
  if (!row || Number(row.rows) === 0) return undefined;
  return { min: instantFromMicros(row.lo), max: instantFromMicros(row.hi), rows: Number(row.rows) };
}

export type Pending = {
  rows: number;
  /** Oldest cursor value among them. */
  oldest?: string;
  /** Oldest value of the column the hot tier's TTL runs on (ttlColumn, else the cursor). */
  oldestForTtl?: string;
};

/** Rows not offloaded yet (cursor at or after the watermark): how many, and the oldest of them. */
export async function pendingRows(
  client: ClickHouseClient,
  table: TableConfig,
  watermark: string | Date,
): Promise<Pending> {
  const micros = (column: string) =>
    `min(toUnixTimestamp64Micro(toDateTime64(${ident(column, 'column')}, 6, 'UTC')))`;
  const cursor = ident(table.cursor.column, 'cursor column');
  const [row] = await queryRows<{ oldest: string; ttl: string; rows: string }>(
    client,
    `SELECT ${micros(table.cursor.column)} AS oldest, ${micros(table.ttlColumn ?? table.cursor.column)} AS ttl,
       count() AS rows
     FROM ${qualifiedName(table.source.database, table.source.table)} WHERE ${cursor} >= ${instantLiteral(watermark)}`,
  );
  const rows = Number(row?.rows ?? 0);
  if (!row || rows === 0) return { rows: 0 };
  return { rows, oldest: instantFromMicros(row.oldest), oldestForTtl: instantFromMicros(row.ttl) };
}

export type TtlHeadroom = { oldestUnoffloaded?: string; ageSeconds: number; headroomSeconds: number };

/**
 * How close the oldest row not yet offloaded is to the hot tier's TTL: `headroomSeconds` is what
 * remains of `ttlSeconds` at `now`, measured on the TTL's own column. On bronze the TTL runs on the
 * trade time while batches follow ingestion time, so a trade that arrived late is nearer its deletion
 * than its cursor suggests.
 */
export function ttlHeadroom(table: TableConfig, pending: Pending, now: Date): TtlHeadroom {
  if (!pending.oldestForTtl) return { ageSeconds: 0, headroomSeconds: table.ttlSeconds };
  const ageSeconds = Math.max(0, (now.getTime() - Date.parse(pending.oldestForTtl)) / 1000);
  return {
    oldestUnoffloaded: pending.oldestForTtl,
    ageSeconds,
    headroomSeconds: table.ttlSeconds - ageSeconds,
  };
}
