import type { ClickHouseClient } from '@clickhouse/client';
import { queryRows } from '../clickhouse/client.ts';
import { ident, instantLiteral, stringLiteral } from '../clickhouse/sql.ts';
import type { TableConfig } from '../config/schema.ts';
import { mapColumn } from '../config/types.ts';
import { StagingMismatchError } from '../errors.ts';
import type { StageStatement } from '../stage/plan.ts';
import { partitionTupleSql, stagingSelect } from '../stage/select.ts';
import { writeTuning } from '../stage/stage.ts';
import { parseStagingPrefix, partName, type S3Access } from '../stage/targets.ts';
import { readWritten, writeStatement } from '../stage/write.ts';
import { addChecksums, type HourCount } from '../watermark/hourly-types.ts';
import { checksumAggregateSql, hourSql, stagedText, sumHours } from './sql.ts';

const HOUR_MS = 3_600_000;

/** The cursor range [first hour, last hour + 1 h) and the SQL test "the row's hour is one of these". */
export function hoursScope(table: TableConfig, hours: string[]) {
  const from = hours[0] as string;
  const to = new Date(Date.parse(hours.at(-1) as string) + HOUR_MS).toISOString();
  const c = ident(table.cursor.column, 'cursor column');
  return {
    from,
    to,
    inRange: `${c} >= ${instantLiteral(from)} AND ${c} < ${instantLiteral(to)}`,
    inHours: `${hourSql(table)} IN (${hours.map(stringLiteral).join(', ')})`,
  };
}

/** ClickHouse's rows of the hours, as the stager writes them (candles re-aggregated). */
export function freshRowsSql(table: TableConfig, hours: string[]): string {
  const scope = hoursScope(table, hours);
  return `SELECT * FROM (${stagingSelect(table, scope.from, scope.to)}) WHERE ${scope.inHours}`;
}

/** Iceberg's rows in its columns cast to the staging types, in config order (unionable with the stager's). */
export function icebergRowsSql(table: TableConfig, iceberg: string, where: string): string {
  const casts = table.columns.map(
    (c) => `CAST(${ident(c.name, 'column')} AS ${mapColumn(c).stagingType}) AS ${ident(c.name, 'column')}`,
  );
  return `SELECT ${casts.join(', ')} FROM ${iceberg} WHERE ${where}`;
}

/**
 * ClickHouse's rows of the hours whose natural key Iceberg does not hold: an anti-join in one
 * statement, in the session that reads both (the keys compared as text of their staging types).
 */
export function missingRowsSql(table: TableConfig, hours: string[], iceberg: string): string {
  const scope = hoursScope(table, hours);
  const keys = table.naturalKey.map((k) => stagedText(table, k)).join(', ');
  return `${freshRowsSql(table, hours)} AND (${keys}) NOT IN (SELECT ${keys} FROM ${iceberg} WHERE ${scope.inRange})`;
}

/** Rows and checksum per hour of a select's rows. */
export async function hoursOf(
  client: ClickHouseClient,
  table: TableConfig,
  select: string,
): Promise<HourCount[]> {
  const rows = await queryRows<{ h: string; rows: string; sum: string }>(
    client,
    `SELECT ${hourSql(table)} AS h, toString(count()) AS rows, ${checksumAggregateSql(table)} AS sum
     FROM (${select}) GROUP BY h`,
  );
  return sumHours(rows.map((r) => ({ hour: r.h, rows: Number(r.rows), checksum: r.sum })));
}

/** `after - before`, hour by hour: what a corrective commit adds to the ledger. */
export function hourDelta(after: HourCount[], before: HourCount[]): HourCount[] {
  return sumHours([
    ...after,
    ...before.map((h) => ({ hour: h.hour, rows: -h.rows, checksum: addChecksums(`-${h.checksum}`) })),
  ]).filter((h) => h.rows !== 0 || h.checksum !== '0');
}

/**
 * Writes a select's rows as Parquet under `prefix`, one file per Iceberg partition, with the stager's
 * own statement writer, and checks the files hold every row counted before writing.
 */
export async function writeRows(
  client: ClickHouseClient,
  table: TableConfig,
  select: string,
  prefix: string,
  s3: S3Access | undefined,
): Promise<{ uris: string[]; rows: number }> {
  const counts = await queryRows<{ k: string[]; rows: string }>(
    client,
    `SELECT ${partitionTupleSql(table)} AS k, toString(count()) AS rows FROM (${select}) GROUP BY k ORDER BY k`,
  );
  if (counts.length === 0) return { uris: [], rows: 0 };
  const keys = counts.map((c) => c.k);
  const planned = counts.map((c) => Number(c.rows));
  const target = parseStagingPrefix(prefix);
  const statement: StageStatement = {
    start: '',
    end: '',
    share: { part: 0, of: 1 },
    keys,
    rows: planned,
    firstFile: 0,
  };
  await writeStatement(
    client,
    target,
    { select, partition: partitionTupleSql(table) },
    statement,
    writeTuning(client, table),
    s3,
  );
  const written = await readWritten(
    client,
    target,
    keys.map((_, i) => i),
    s3,
  );
  const problems = keys.flatMap((key, i) =>
    written.get(i)?.rows === planned[i]
      ? []
      : [
          `${partName(i)} (partition ${key.join('/')}) holds ${written.get(i)?.rows ?? 0} rows, expected ${planned[i]}`,
        ],
  );
  if (problems.length)
    throw new StagingMismatchError(
      `repair files of ${table.name} do not match the rows to write: ${problems.slice(0, 5).join('; ')}. Rows changed while writing; run the repair again`,
      { table: table.name, problems },
    );
  return {
    uris: keys.map((_, i) => `${target.prefix}${partName(i)}`),
    rows: planned.reduce((n, r) => n + r, 0),
  };
}
