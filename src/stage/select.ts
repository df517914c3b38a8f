import { ident, instantLiteral, qualifiedName, stringLiteral } from '../clickhouse/sql.ts';
import type { PartitionFieldConfig, TableConfig } from '../config/schema.ts';
import { type ChType, mapColumn, parseClickHouseType } from '../config/types.ts';
import { ConfigError } from '../errors.ts';

/** Same rule as the config loader: `fn(column)` or `fn(column, column)` from a short allow-list. */
const AGGREGATE =
  /^(sum|min|max|any|anyLast|argMin|argMax)\(([A-Za-z_][A-Za-z0-9_]*)(?:, ?([A-Za-z_][A-Za-z0-9_]*))?\)$/;

function aggregateSql(table: TableConfig, output: string, expression: string): string {
  const m = AGGREGATE.exec(expression);
  if (!m)
    throw new ConfigError(
      `table ${table.name}: reaggregate.columns.${output}: ${JSON.stringify(expression)} must be fn(column) or fn(column, column) with fn one of sum, min, max, any, anyLast, argMin, argMax`,
      { table: table.name, field: `reaggregate.columns.${output}` },
    );
  const args = [m[2] as string, ...(m[3] ? [m[3]] : [])].map((a) => ident(a, 'column'));
  return `${m[1]}(${args.join(', ')})`;
}

/** `CAST` to the staging type; UInt64 -> Int64 uses an overflow-checked cast so 2^63 and above fail loudly. */
function castSql(column: TableConfig['columns'][number], input: string): string {
  const { stagingType } = mapColumn(column);
  const unsigned64 = /^(Nullable\()?(LowCardinality\()?UInt64\)*$/.test(column.type.replace(/\s/g, ''));
  if (unsigned64 && /^(Nullable\()?Int64\)?$/.test(stagingType))
    return `accurateCast(${input}, ${stringLiteral(stagingType)})`;
  return `CAST(${input} AS ${stagingType})`;
}

/**
 * The rows of one window, cast to their staging types, in config column order. Filtering (and, for
 * candle tables, re-aggregating partial rows into one row per candle) happens in an inner query on the
 * raw columns, so the cursor comparison runs on the stored values (and becomes MergeTree's PREWHERE),
 * and output aliases shadow nothing. A share filter hashes raw key columns; for candle tables those are
 * the group columns, so a candle's partial rows always land in the same share.
 */
export function stagingSelect(
  table: TableConfig,
  windowStart: string,
  windowEnd: string,
  /** Only rows whose hash of hashColumns() is `part` modulo `of`: one share of an oversized slice. */
  share?: { part: number; of: number },
): string {
  const source = qualifiedName(table.source.database, table.source.table);
  const cursor = ident(table.cursor.column, 'cursor column');
  let where = `${cursor} >= ${instantLiteral(windowStart)} AND ${cursor} < ${instantLiteral(windowEnd)}`;
  if (share && share.of > 1) {
    const hashed = hashColumns(table).map((c) => ident(c, 'natural key column'));
    where += ` AND cityHash64(${hashed.join(', ')}) % ${Math.trunc(share.of)} = ${Math.trunc(share.part)}`;
  }
  if (!table.reaggregate) {
    const raw = table.columns.map((c) => ident(c.name, 'column')).join(', ');
    const casts = table.columns.map((c) => `${castSql(c, ident(c.name))} AS ${ident(c.name)}`).join(', ');
    return `SELECT ${casts} FROM (SELECT ${raw} FROM ${source} WHERE ${where})`;
  }
  const { groupBy, columns } = table.reaggregate;
  const inner = (name: string) => ident(`__agg_${name}`.slice(0, 63), 'column');
  const grouped = groupBy.map((g) => ident(g, 'column'));
  const aggregates = Object.entries(columns).map(
    ([output, expression]) => `${aggregateSql(table, output, expression)} AS ${inner(output)}`,
  );
  const casts = table.columns.map((c) => {
    const input = groupBy.includes(c.name) ? ident(c.name) : inner(c.name);
    return `${castSql(c, input)} AS ${ident(c.name)}`;
  });
  return `SELECT ${casts.join(', ')} FROM (SELECT ${[...grouped, ...aggregates].join(', ')} FROM ${source} WHERE ${where} GROUP BY ${grouped.join(', ')})`;
}

function stagingTypeOf(table: TableConfig, name: string): { type: ChType; nullable: boolean } {
  const column = table.columns.find((c) => c.name === name);
  if (!column)
    throw new ConfigError(`table ${table.name}: partitionSpec column ${name} is not in columns`, {
      table: table.name,
    });
  let type = parseClickHouseType(mapColumn(column).stagingType);
  const nullable = type.name === 'Nullable';
  if (nullable) type = type.args[0] as ChType;
  return { type, nullable };
}

const INTEGERS = new Set(['Int32', 'Int64']);
const TIMES = new Set(['DateTime64', 'Date32']);

/**
 * A SQL expression over the staged columns whose value classes refine the Iceberg partition transform
 * (equal Iceberg partition <=> equal value), as a String. Timestamps are staged in UTC, so day/month/
 * hour boundaries are UTC ones, like Iceberg's; `bucket[N]` is Iceberg's murmur3 (ClickHouse's
 * murmurHash3_32 matches the spec's reference values for strings and longs).
 */
export function partitionKeySql(table: TableConfig, field: PartitionFieldConfig): string {
  const { type, nullable } = stagingTypeOf(table, field.column);
  const c = ident(field.column, 'partition column');
  const refuse = (): never => {
    throw new ConfigError(
      `table ${table.name}: partition transform ${field.transform} on column ${field.column} (staged as ${type.name}) is not supported; use identity, or year/month/day/hour on timestamps, or bucket/truncate on integers and strings`,
      { table: table.name, column: field.column, transform: field.transform },
    );
  };
  const bucket = /^bucket\[(\d+)\]$/.exec(field.transform);
  const truncate = /^truncate\[(\d+)\]$/.exec(field.transform);
  let expression: string;
  if (field.transform === 'identity') {
    if (type.name === 'Array' || type.name === 'Map') refuse();
    expression = c;
  } else if (field.transform === 'void') return `''`;
  else if (['year', 'month', 'day'].includes(field.transform)) {
    if (!TIMES.has(type.name)) refuse();
    const fn = { year: 'toYear', month: 'toYYYYMM', day: 'toYYYYMMDD' }[field.transform] as string;
    expression = `${fn}(${c})`;
  } else if (field.transform === 'hour') {
    if (type.name !== 'DateTime64') refuse();
    expression = `toStartOfHour(${c})`;
  } else if (bucket) {
    const n = Number(bucket[1]);
    let hashed: string;
    if (INTEGERS.has(type.name)) hashed = `toInt64(${c})`;
    else if (type.name === 'String') hashed = c;
    else if (type.name === 'Date32') hashed = `toInt64(toInt32(${c}))`;
    else if (type.name === 'DateTime64') hashed = `toUnixTimestamp64Micro(${c})`;
    else return refuse();
    expression = `bitAnd(murmurHash3_32(${hashed}), 2147483647) % ${n}`;
  } else if (truncate) {
    const w = Number(truncate[1]);
    if (INTEGERS.has(type.name)) expression = `${c} - (((${c} % ${w}) + ${w}) % ${w})`;
    else if (type.name === 'String') expression = `substringUTF8(${c}, 1, ${w})`;
    else return refuse();
  } else return refuse();
  // A null is its own partition: prefix values so no value can look like the null marker.
  return nullable ? `ifNull(concat('=', toString(${expression})), 'null')` : `toString(${expression})`;
}

/** The partition key of a staged row as a tuple of Strings; `tuple('')` for unpartitioned tables. */
export function partitionTupleSql(table: TableConfig): string {
  const parts = table.partitionSpec.map((f) => partitionKeySql(table, f));
  return `tuple(${parts.length ? parts.join(', ') : "''"})`;
}

/** A partition key (as partitionTupleSql gives it) as a tuple literal. */
export function partitionKeyLiteral(key: readonly string[]): string {
  return `tuple(${key.map(stringLiteral).join(', ')})`;
}

/** Columns whose hash splits a slice that is too big for one file: whole groups for candle tables. */
export function hashColumns(table: TableConfig): string[] {
  return table.reaggregate ? table.reaggregate.groupBy : table.naturalKey;
}
