import { ident, instantLiteral, qualifiedName } from '../clickhouse/sql.ts';
import type { TableConfig } from '../config/schema.ts';
import { mapColumn } from '../config/types.ts';
import { stagingSelect } from '../stage/select.ts';
import { addChecksums, type HourCount } from '../watermark/hourly-types.ts';

/**
 * SQL shared by the stager (what a batch commits per hour), the per-hour check (what ClickHouse holds
 * per hour) and the audit: the same expressions on both sides, so equal data gives equal numbers.
 */

/** The start of the hour of a row's cursor, in UTC, as a DateTime64: cheap to group by. */
export function hourStartSql(table: TableConfig): string {
  const c = ident(table.cursor.column, 'cursor column');
  return `toStartOfHour(toDateTime64(${c}, 6, 'UTC'))`;
}

/** An hour start (from hourStartSql) as an ISO instant; formatting after grouping costs per group, not per row. */
export function formatHourSql(hourStart: string): string {
  return `formatDateTime(${hourStart}, '%Y-%m-%dT%H:00:00.000Z', 'UTC')`;
}

/** The hour of a row's cursor as an ISO instant, in UTC. */
export function hourSql(table: TableConfig): string {
  return formatHourSql(hourStartSql(table));
}

/** Text of a column as its staging type: ClickHouse's rows and Iceberg's (read back by chDB) print alike. */
export function stagedText(table: TableConfig, name: string): string {
  const column = table.columns.find((c) => c.name === name);
  const type = column ? mapColumn(column).stagingType : 'String';
  return `toString(CAST(${ident(name, 'column')} AS ${type}))`;
}

/** A hash of every column of a row: a candle whose values change hashes differently. */
export function rowHashSql(table: TableConfig): string {
  return `cityHash64(${table.columns.map((c) => stagedText(table, c.name)).join(', ')})`;
}

/**
 * Whether an hour's rows are compared by value too: candle tables, whose rows a late trade changes in
 * place (their count stays the same). Trade tables only ever gain rows, which a count sees.
 */
export const checksValues = (table: TableConfig) => table.reaggregate !== undefined;

/** Per-group aggregate of the checksum: a sum of row hashes (UInt64 sums wrap: modulo 2^64). */
export function checksumAggregateSql(table: TableConfig): string {
  return checksValues(table) ? `toString(sum(${rowHashSql(table)}))` : `'0'`;
}

/**
 * What the offload of [from, to) writes, per hour: the rows of the staging select (candles re-aggregated
 * to one row each) for candle tables; the raw rows, read straight from the source, for the others.
 */
export async function clickhouseHours(
  query: <T>(sql: string) => Promise<T[]>,
  table: TableConfig,
  from: string,
  to: string,
): Promise<HourCount[]> {
  const c = ident(table.cursor.column, 'cursor column');
  const source = checksValues(table)
    ? `(${stagingSelect(table, from, to)})`
    : `(SELECT ${c} FROM ${qualifiedName(table.source.database, table.source.table)}
        WHERE ${c} >= ${instantLiteral(from)} AND ${c} < ${instantLiteral(to)})`;
  const rows = await query<{ hour: string; rows: string; checksum: string }>(
    `SELECT ${hourSql(table)} AS hour, toString(count()) AS rows, ${checksumAggregateSql(table)} AS checksum
     FROM ${source} GROUP BY hour ORDER BY hour`,
  );
  return rows.map((r) => ({ hour: r.hour, rows: Number(r.rows), checksum: addChecksums(r.checksum) }));
}

/** Adds up hour counts (several groups of one hour, or several ledger entries) into one per hour, in order. */
export function sumHours(counts: Iterable<HourCount>): HourCount[] {
  const byHour = new Map<string, HourCount>();
  for (const c of counts) {
    const seen = byHour.get(c.hour);
    byHour.set(
      c.hour,
      seen
        ? { hour: c.hour, rows: seen.rows + c.rows, checksum: addChecksums(seen.checksum, c.checksum) }
        : { ...c },
    );
  }
  return [...byHour.values()].sort((a, b) => Date.parse(a.hour) - Date.parse(b.hour));
}
