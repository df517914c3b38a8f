import type { ClickHouseClient } from '@clickhouse/client';
import { queryRows } from '../clickhouse/client.ts';
import { stringLiteral } from '../clickhouse/sql.ts';
import type { TableConfig } from '../config/schema.ts';
import { ConfigError } from '../errors.ts';
import type { ObjectStore } from '../iceberg/object-store.ts';
import type { StageStatement } from './plan.ts';
import { partitionKeyLiteral, partitionTupleSql, stagingSelect } from './select.ts';
import { type StreamedFile, streamFile } from './stream.ts';
import { partName, type S3Access, type StagingTarget, tableFunctionSql } from './targets.ts';

/**
 * `maxThreads` undefined: the server's own default (a remote server's memory is not ours to bound).
 * `boundPartitions`: write a big slice of several partitions one partition at a time, to hold one row
 * group instead of one per partition (default true; a remote server's memory is not ours, and each
 * extra statement scans the slice's cursor again).
 */
export type WriteTuning = {
  rowGroupRows: number;
  /** A row group also ends once it holds this many bytes, checked as each block of rows is added. */
  rowGroupBytes: number;
  /** Rows per block read (the engine's default where undefined): the grain of the byte cap above. */
  blockRows?: number;
  maxThreads: number | undefined;
  boundPartitions?: boolean;
};

/** Settings of every statement that writes Parquet (in the SQL: chDB would keep `SET`s for the session). */
function writeSettings(tuning: WriteTuning): string {
  const { rowGroupRows, rowGroupBytes, blockRows, maxThreads } = tuning;
  return [
    // Where we bound the threads (the embedded engine), rows are encoded on all of them: on a quiet
    // machine bronze went from 0.46x to 0.88x ClickHouse's own export.
    ...(maxThreads === undefined
      ? []
      : [`max_threads = ${maxThreads}`, 'output_format_parquet_parallel_encoding = 1']),
    ...(blockRows === undefined ? [] : [`max_block_size = ${blockRows}`]),
    // No Parquet bloom filters, as Iceberg's own writers by default: ClickHouse's default writes them for
    // every column, which cost 15-25% of the write's CPU and made bronze files 30% bigger.
    'output_format_parquet_write_bloom_filter = 0',
    // Create-only: a file that exists is an error, never replaced (a server profile may say otherwise).
    'engine_file_truncate_on_insert = 0',
    's3_truncate_on_insert = 0',
    's3_create_new_file_on_insert = 0',
    `output_format_parquet_compression_method = 'zstd'`,
    `output_format_parquet_row_group_size = ${rowGroupRows}`,
    // Caps wide rows (silver's lists and maps) the way rowGroupRows caps narrow ones.
    `output_format_parquet_row_group_size_bytes = ${rowGroupBytes}`,
  ].join(', ');
}

/** The slice's rows, and the partition key of a row of it (partitionTupleSql). */
export type StatementSql = { select: string; partition: string };

export function statementSql(table: TableConfig, statement: StageStatement): StatementSql {
  return {
    select: stagingSelect(table, statement.start, statement.end, statement.share),
    partition: partitionTupleSql(table),
  };
}

/** The message of a statement that met a row whose partition the plan did not see (it arrived later). */
export const UNPLANNED_PARTITION = 'a row of a partition that appeared after planning';

/**
 * The rows of a statement's `p`-th partition (1-based). A slice of one partition goes whole into its
 * file (no per-row partition expression; a row of another partition that arrived after planning lands
 * in the file, and its count no longer matches the plan's). One tuple equality per row: looking the
 * key up in an array of keys (`indexOf`) cost ten times the CPU on silver.
 */
function partitionRows(sql: StatementSql, statement: StageStatement, p: number): string {
  return statement.keys.length > 1
    ? `SELECT * FROM (${sql.select}) WHERE ${sql.partition} = ${partitionKeyLiteral(statement.keys[p - 1] ?? [])}`
    : sql.select;
}

/**
 * A slice of several partitions is written one partition at a time, so rows of no planned partition
 * would be in no file: they are counted first, and any fails the statement.
 */
async function assertPlannedPartitions(
  client: ClickHouseClient,
  sql: StatementSql,
  statement: StageStatement,
) {
  if (statement.keys.length <= 1) return;
  const [row] = await queryRows<{ n: string }>(
    client,
    // countIf, not WHERE: ClickHouse 26's filter pushdown into a Parquet source (the repair reads Iceberg
    // files) fails on this predicate with NOT_FOUND_COLUMN_IN_BLOCK.
    `SELECT countIf(${sql.partition} NOT IN (${statement.keys.map(partitionKeyLiteral).join(', ')})) AS n FROM (${sql.select})`,
  );
  if (Number(row?.n) > 0) throw new Error(`${UNPLANNED_PARTITION} (${row?.n} rows)`);
}

/**
 * One statement: ClickHouse writes its slice as one file per partition. A slice of several partitions
 * that fills more than one row group is written one partition at a time: one INSERT with PARTITION BY
 * keeps a writer, and its row group, open for every partition at once (measured on a 5M-row silver hour
 * of three partitions: about 100 MB more, and more CPU), while reading the slice once per partition is
 * cheap (the cursor and partition filters run first, as PREWHERE, on a few columns). A smaller slice
 * holds less than one row group in all its writers together, so it goes in one INSERT: a candle table
 * then re-aggregates its slice once, not once per partition.
 */
export async function writeStatement(
  client: ClickHouseClient,
  target: StagingTarget,
  sql: StatementSql,
  statement: StageStatement,
  tuning: WriteTuning,
  s3: S3Access | undefined,
): Promise<void> {
  const sliceRows = statement.rows.reduce((n, r) => n + r, 0);
  if (statement.keys.length > 1 && (sliceRows <= tuning.rowGroupRows || tuning.boundPartitions === false))
    return writePartitioned(client, target, sql, statement, tuning, s3);
  await assertPlannedPartitions(client, sql, statement);
  for (let p = 1; p <= statement.keys.length; p++) {
    const destination = tableFunctionSql(target, partName(statement.firstFile + p - 1), s3);
    const rows = partitionRows(sql, statement, p);
    await client.command({
      query: `INSERT INTO FUNCTION ${destination} ${rows} SETTINGS ${writeSettings(tuning)}`,
    });
  }
}

/**
 * A slice's partitions in one INSERT, named by file index through PARTITION BY. A row of a partition
 * the plan did not see fails the statement: the check sits in the PARTITION BY expression, which sees
 * only the rows being written (in a WHERE, ClickHouse may push it below the window's own filter and
 * trip on rows outside the window).
 */
async function writePartitioned(
  client: ClickHouseClient,
  target: StagingTarget,
  sql: StatementSql,
  statement: StageStatement,
  tuning: WriteTuning,
  s3: S3Access | undefined,
): Promise<void> {
  const destination = tableFunctionSql(target, 'part-{_partition_id}.parquet', s3);
  const position = `indexOf([${statement.keys.map(partitionKeyLiteral).join(', ')}], ${sql.partition})`;
  const unplanned = `throwIf(${position} = 0, ${stringLiteral(UNPLANNED_PARTITION)})`;
  const file = `toInt64(${position}) + ${statement.firstFile - 1} + ${unplanned}`;
  const settings = `${writeSettings(tuning)}, max_partitions_per_insert_block = ${statement.keys.length + 1}`;
  await client.command({
    query: `INSERT INTO FUNCTION ${destination} PARTITION BY leftPad(toString(${file}), 5, '0')
      ${sql.select} SETTINGS ${settings}`,
  });
}

/** Row counts and sizes of the written files, from their Parquet footers alone. */
export async function readWritten(
  client: ClickHouseClient,
  target: StagingTarget,
  indexes: number[],
  s3: S3Access | undefined,
): Promise<Map<number, StreamedFile>> {
  const byIndex = new Map<number, StreamedFile>();
  for (let i = 0; i < indexes.length; i += 1000) {
    const names = indexes.slice(i, i + 1000).map((n) => stringLiteral(partName(n)));
    const rows = await queryRows<{ file: string; bytes: string; rows: string }>(
      client,
      `SELECT _file AS file, _size AS bytes, num_rows AS rows
       FROM ${tableFunctionSql(target, 'part-*.parquet', s3, 'ParquetMetadata')} WHERE _file IN (${names.join(', ')})`,
    );
    for (const r of rows)
      byIndex.set(Number(/^part-(\d+)\.parquet$/.exec(r.file)?.[1]), {
        rows: Number(r.rows),
        bytes: Number(r.bytes),
      });
  }
  return byIndex;
}

/**
 * The stream writer: one SELECT ... FORMAT Parquet per file, bytes piped through this process; a slice
 * is split into partitions, and checked for unplanned ones, as writeStatement does.
 */
export async function streamStatement(
  client: ClickHouseClient,
  target: StagingTarget,
  sql: StatementSql,
  statement: StageStatement,
  tuning: WriteTuning,
  objects: ObjectStore | undefined,
): Promise<Map<number, StreamedFile>> {
  if (target.kind === 's3' && !objects)
    throw new ConfigError('streaming staged files to S3 needs an object store; pass `objects`', {
      stagingPrefix: target.prefix,
    });
  await assertPlannedPartitions(client, sql, statement);
  const byIndex = new Map<number, StreamedFile>();
  for (let p = 1; p <= statement.keys.length; p++) {
    const index = statement.firstFile + p - 1;
    const query = `${partitionRows(sql, statement, p)} FORMAT Parquet SETTINGS ${writeSettings(tuning)}`;
    const file = await streamFile(client, query, target, partName(index), objects);
    if (file) byIndex.set(index, file);
  }
  return byIndex;
}
