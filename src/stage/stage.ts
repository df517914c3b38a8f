import type { ClickHouseClient } from '@clickhouse/client';
import { isEmbedded, queryRows } from '../clickhouse/client.ts';
import { ident } from '../clickhouse/sql.ts';
import type { TableConfig } from '../config/schema.ts';
import { ConfigError, InputError, StagingMismatchError } from '../errors.ts';
import { checksumAggregateSql, hourSql, sumHours } from '../hourly/sql.ts';
import type { ObjectStore } from '../iceberg/object-store.ts';
import type { BatchSpec, Staged } from '../pipeline/events.ts';
import { makeBatch } from '../plan/batch.ts';
import type { HourCount } from '../watermark/hourly-types.ts';
import { type BucketCount, bucketMillis, planStatements, type StageStatement } from './plan.ts';
import { partitionTupleSql, stagingSelect } from './select.ts';
import { clearParts, type StreamedFile } from './stream.ts';
import { parseStagingPrefix, partName, type S3Access } from './targets.ts';
import {
  readWritten,
  statementSql,
  streamStatement,
  UNPLANNED_PARTITION,
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
  /**
   * Rows one statement writes (one file per partition of its slice), so rows per file at most. Memory
   * does not depend on it (row groups bound that); each statement has a fixed cost, and bigger files
   * suit Iceberg readers. 4M bronze rows make a file of about 80 MB; measured on a 10M-row backlog,
   * 4M instead of 1M per statement took 15% less time.
   */
  maxRowsPerFile?: number;
  /**
   * Parquet row group size. ClickHouse holds the row groups it is encoding in memory, so this bounds
   * the write's memory (measured on bronze: 65,536 rows add about 140 MB to the process while writing,
   * 262,144 about 290 MB, ClickHouse's default of 1M about 520 MB; the smallest costs about 8% of the
   * rows/s). Default: 65,536 on the embedded engine, whose memory is this process's; 262,144 on a
   * server, for readers that prefer fewer, larger groups.
   */
  rowGroupRows?: number;
  /**
   * ClickHouse threads per write. Default: 2 for the embedded engine, whose memory is this process's
   * (measured: 1.5x the rows/s of one thread for about 25 MB more peak), the server's default for a
   * remote server.
   */
  maxThreads?: number;
  clock?: () => number;
};

const DEFAULTS = {
  maxRowsPerFile: 4_000_000,
  embedded: { rowGroupRows: 65_536, maxThreads: 2 },
  server: { rowGroupRows: 262_144, maxThreads: undefined },
};

/** Rows of the window per (cursor bucket, partition): the input of the slicing plan. */
async function histogram(
  client: ClickHouseClient,
  table: TableConfig,
  window: { windowStart: string; windowEnd: string },
  bucketMs: number,
): Promise<Array<BucketCount & { hour: HourCount }>> {
  const select = stagingSelect(table, window.windowStart, window.windowEnd);
  const cursor = ident(table.cursor.column, 'cursor column');
  const startMs = Date.parse(window.windowStart);
  // Grouped by hour too: the batch's rows per hour go to the hourly ledger at the watermark commit.
  const rows = await queryRows<{ b: string; k: string[]; rows: string; h: string; sum: string }>(
    client,
    `SELECT intDiv(toUnixTimestamp64Milli(${cursor}) - ${startMs}, ${bucketMs}) AS b, ${partitionTupleSql(table)} AS k,
       ${hourSql(table)} AS h, count() AS rows, ${checksumAggregateSql(table)} AS sum FROM (${select}) GROUP BY b, k, h`,
  );
  return rows.map((r) => ({
    bucket: Number(r.b),
    key: r.k,
    rows: Number(r.rows),
    hour: { hour: r.h, rows: Number(r.rows), checksum: r.sum },
  }));
}

/**
 * Stages one batch: the rows of `[windowStart, windowEnd)` on the table's cursor, cast to staging types
 * (candle tables re-aggregated to one row per candle), as zstd Parquet at `<stagingPrefix>part-NNNNN.parquet`.
 * Every file holds one Iceberg partition and at most about `maxRowsPerFile` rows; the same data gives
 * the same files, so a retry overwrites them. ClickHouse writes the files (nothing is buffered here);
 * afterwards the row counts in the files' footers are checked against the histogram the slices were
 * planned from, so the window is read once for the histogram (cursor and partition columns only) and
 * once for the write.
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
  const engine = isEmbedded(client) ? DEFAULTS.embedded : DEFAULTS.server;
  const tuning: WriteTuning = {
    rowGroupRows: options.rowGroupRows ?? engine.rowGroupRows,
    maxThreads: options.maxThreads ?? engine.maxThreads,
  };
  const startMs = Date.parse(window.windowStart);
  const endMs = Date.parse(window.windowEnd);
  const bucketMs = bucketMillis(startMs, endMs);
  const counts = await histogram(client, table, window, bucketMs);
  const maxRows = options.maxRowsPerFile ?? DEFAULTS.maxRowsPerFile;
  const statements = planStatements(counts, { startMs, endMs, bucketMs }, maxRows);
  await clearParts(target, options.objects);

  let written = new Map<number, StreamedFile>();
  try {
    for (const statement of statements) {
      const sql = statementSql(table, statement);
      if (writer === 'clickhouse') await writeStatement(client, target, sql, statement, tuning, options.s3);
      else
        for (const [i, f] of await streamStatement(client, target, sql, statement, tuning, options.objects))
          written.set(i, f);
    }
  } catch (error) {
    if (error instanceof Error && error.message.includes(UNPLANNED_PARTITION))
      throw mismatch(table, batch, [UNPLANNED_PARTITION]);
    throw error;
  }
  if (writer === 'clickhouse' && statements.length > 0) {
    const indexes = statements.flatMap((s) => s.keys.map((_, i) => s.firstFile + i));
    written = await readWritten(client, target, indexes, options.s3);
  }
  const files = check(table, batch, statements, written);
  return { ...files, durationMs: clock() - started, hours: sumHours(counts.map((c) => c.hour)) };
}

/**
 * The files of each slice and partition hold, all shares together, exactly the rows the histogram
 * counted before writing: a row added or removed while staging (a late insert, a TTL merge) fails the
 * batch instead of leaving a file short or long.
 */
function check(
  table: TableConfig,
  batch: BatchSpec,
  statements: StageStatement[],
  written: Map<number, StreamedFile>,
): Pick<Staged, 'rows' | 'files'> {
  const problems: string[] = [];
  const slices = new Map<string, StageStatement[]>();
  for (const s of statements) slices.set(s.start, [...(slices.get(s.start) ?? []), s]);
  for (const shares of slices.values()) {
    const [first] = shares as [StageStatement];
    first.keys.forEach((key, i) => {
      const names = shares.map((s) => partName(s.firstFile + i));
      const rows = shares.reduce((n, s) => n + (written.get(s.firstFile + i)?.rows ?? 0), 0);
      if (rows !== first.rows[i])
        problems.push(
          `${names.join(', ')} (partition ${key.join('/')}) hold ${rows} rows, the window had ${first.rows[i]}`,
        );
    });
  }
  if (problems.length) throw mismatch(table, batch, problems);
  const files: Staged['files'] = [];
  let rows = 0;
  for (const [index, file] of [...written.entries()].sort(([a], [b]) => a - b))
    if (file.rows > 0) {
      files.push({ uri: `${batch.stagingPrefix.replace(/\/?$/, '/')}${partName(index)}`, bytes: file.bytes });
      rows += file.rows;
    }
  return { rows, files };
}

function mismatch(table: TableConfig, batch: BatchSpec, problems: string[]): StagingMismatchError {
  return new StagingMismatchError(
    `staged files of ${table.name} [${batch.windowStart}, ${batch.windowEnd}) do not match the window: ${problems.slice(0, 5).join('; ')}. The rows changed while staging (a TTL merge or a late insert); stage the batch again`,
    { table: table.name, batchId: batch.batchId, problems },
  );
}
