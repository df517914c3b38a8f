import type { ClickHouseClient } from '@clickhouse/client';
import { isEmbedded, queryRows } from '../clickhouse/client.ts';
import { ident } from '../clickhouse/sql.ts';
import type { TableConfig } from '../config/schema.ts';
import { ConfigError, InputError, StagingMismatchError } from '../errors.ts';
import type { ObjectStore } from '../iceberg/object-store.ts';
import type { BatchSpec, Staged } from '../pipeline/events.ts';
import { makeBatch } from '../plan/batch.ts';
import { type BucketCount, bucketMillis, planStatements } from './plan.ts';
import { partitionTupleSql, stagingSelect } from './select.ts';
import { clearParts, type StreamedFile } from './stream.ts';
import { parseStagingPrefix, partName, type S3Access } from './targets.ts';
import {
  readWritten,
  recount,
  statementSql,
  streamStatement,
  type WriteTuning,
  writeStatement,
} from './write.ts';

export type StageOptions = {
  client: ClickHouseClient;
  /** Endpoint and credentials for ClickHouse's own writes to S3 staging. */
  s3?: S3Access | undefined;
  /** For S3 staging: removes an earlier attempt's files first; required by the stream writer. */
  objects?: ObjectStore | undefined;
  /**
   * `clickhouse`: ClickHouse writes the files itself (file() for the embedded engine, s3() for any).
   * `stream`: Parquet bytes stream through this process (a remote server and local staging).
   * Default: `clickhouse` unless a remote server would have to write a local path.
   */
  writer?: 'clickhouse' | 'stream';
  /** Rows one statement writes (one file per partition of its slice), so rows per file at most. */
  maxRowsPerFile?: number;
  /** Parquet row group size; smaller groups use less memory while writing, larger compress better. */
  rowGroupRows?: number;
  /**
   * ClickHouse threads per write. Default: 2 for the embedded engine, whose memory is this process's
   * (measured: 1.5x the rows/s of one thread for about 25 MB more peak), the server's default for a
   * remote server.
   */
  maxThreads?: number;
  clock?: () => number;
};

const DEFAULTS = { maxRowsPerFile: 1_000_000, rowGroupRows: 262_144, embeddedThreads: 2 };

/** Rows of the window per (cursor bucket, partition): the input of the slicing plan. */
async function histogram(
  client: ClickHouseClient,
  table: TableConfig,
  window: { windowStart: string; windowEnd: string },
  bucketMs: number,
): Promise<BucketCount[]> {
  const select = stagingSelect(table, window.windowStart, window.windowEnd);
  const cursor = ident(table.cursor.column, 'cursor column');
  const startMs = Date.parse(window.windowStart);
  const rows = await queryRows<{ b: string; k: string[]; rows: string }>(
    client,
    `SELECT intDiv(toUnixTimestamp64Milli(${cursor}) - ${startMs}, ${bucketMs}) AS b, ${partitionTupleSql(table)} AS k,
       count() AS rows FROM (${select}) GROUP BY b, k`,
  );
  return rows.map((r) => ({ bucket: Number(r.b), key: r.k, rows: Number(r.rows) }));
}

/**
 * Stages one batch: the rows of `[windowStart, windowEnd)` on the table's cursor, cast to staging types
 * (candle tables re-aggregated to one row per candle), as zstd Parquet at `<stagingPrefix>part-NNNNN.parquet`.
 * Every file holds one Iceberg partition and at most about `maxRowsPerFile` rows; the same data gives
 * the same files, so a retry overwrites them. ClickHouse writes the files (nothing is buffered here);
 * afterwards each file's own row count is checked against a recount of its rows in ClickHouse.
 */
export async function stageBatch(
  table: TableConfig,
  batch: BatchSpec,
  options: StageOptions,
): Promise<Staged> {
  const clock = options.clock ?? Date.now;
  const started = clock();
  if (batch.table !== table.name)
    throw new InputError(`batch is for table ${batch.table}, but the config given is ${table.name}`, {
      table: batch.table,
    });
  const window = makeBatch(table.name, batch.windowStart, batch.windowEnd);
  const target = parseStagingPrefix(batch.stagingPrefix);
  const { client } = options;
  const writer = options.writer ?? (target.kind === 'file' && !isEmbedded(client) ? 'stream' : 'clickhouse');
  if (writer === 'clickhouse' && target.kind === 'file' && !isEmbedded(client))
    throw new ConfigError(
      `a remote ClickHouse server cannot write the local staging path ${target.dir}; use writer 'stream' or S3 staging`,
      { stagingPrefix: batch.stagingPrefix },
    );
  const tuning: WriteTuning = {
    rowGroupRows: options.rowGroupRows ?? DEFAULTS.rowGroupRows,
    maxThreads: options.maxThreads ?? (isEmbedded(client) ? DEFAULTS.embeddedThreads : undefined),
  };
  const startMs = Date.parse(window.windowStart);
  const endMs = Date.parse(window.windowEnd);
  const bucketMs = bucketMillis(startMs, endMs);
  const counts = await histogram(client, table, window, bucketMs);
  const maxRows = options.maxRowsPerFile ?? DEFAULTS.maxRowsPerFile;
  const statements = planStatements(counts, { startMs, endMs, bucketMs }, maxRows);
  await clearParts(target, options.objects);

  const expected = new Map<number, number>();
  let unplanned = 0;
  let written = new Map<number, StreamedFile>();
  for (const statement of statements) {
    const sql = statementSql(table, statement);
    if (writer === 'clickhouse') await writeStatement(client, target, sql, statement, tuning, options.s3);
    else
      for (const [i, f] of await streamStatement(client, target, sql, statement, tuning, options.objects))
        written.set(i, f);
    for (const [i, rows] of await recount(client, sql, statement))
      if (i < 0) unplanned += rows;
      else expected.set(i, rows);
  }
  if (writer === 'clickhouse' && expected.size > 0)
    written = await readWritten(client, target, [...expected.keys()], options.s3);
  return check(table, batch, window, { expected, unplanned, written, durationMs: clock() - started });
}

/** Every file holds exactly the rows ClickHouse counts for it, and no row fell outside the plan. */
function check(
  table: TableConfig,
  batch: BatchSpec,
  window: { windowStart: string; windowEnd: string },
  result: {
    expected: Map<number, number>;
    unplanned: number;
    written: Map<number, StreamedFile>;
    durationMs: number;
  },
): Staged {
  const problems: string[] = [];
  if (result.unplanned > 0)
    problems.push(`${result.unplanned} rows belong to a partition that appeared after planning`);
  const files: Staged['files'] = [];
  let rows = 0;
  for (const [index, count] of [...result.expected.entries()].sort(([a], [b]) => a - b)) {
    const file = result.written.get(index);
    if (!file || file.rows !== count)
      problems.push(`${partName(index)} holds ${file?.rows ?? 0} rows, the window has ${count} for it`);
    else {
      files.push({ uri: `${batch.stagingPrefix.replace(/\/?$/, '/')}${partName(index)}`, bytes: file.bytes });
      rows += count;
    }
  }
  if (problems.length)
    throw new StagingMismatchError(
      `staged files of ${table.name} [${window.windowStart}, ${window.windowEnd}) do not match the window: ${problems.slice(0, 5).join('; ')}. The rows changed while staging (a TTL merge or a late insert); stage the batch again`,
      { table: table.name, batchId: batch.batchId, problems },
    );
  return { rows, files, durationMs: result.durationMs };
}
