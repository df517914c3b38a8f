import type { ClickHouseClient } from '@clickhouse/client';
import { isEmbedded, queryRows } from '../clickhouse/client.ts';
import { ident } from '../clickhouse/sql.ts';
import type { TableConfig } from '../config/schema.ts';
import { ConfigError, InputError, StagingMismatchError } from '../errors.ts';
import { checksumAggregateSql, formatHourSql, hourStartSql, sumHours } from '../hourly/sql.ts';
import type { ObjectStore } from '../iceberg/object-store.ts';
import type { BatchSpec, Staged } from '../pipeline/events.ts';
import { makeBatch } from '../plan/batch.ts';
import type { HourCount } from '../watermark/hourly-types.ts';
import { type BucketCount, bucketMillis, planStatements, type StageStatement } from './plan.ts';
import { partitionTupleSql, stagingSelect } from './select.ts';
import { prepareTarget, type StreamedFile } from './stream.ts';
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
  /** Endpoint and identity (a named collection, or the server's own) of ClickHouse's own writes to S3. */
  s3?: S3Access | undefined;
  /** The store the stream writer uploads to S3 through. */
  objects?: ObjectStore | undefined;
  /**
   * `clickhouse`: ClickHouse writes the files itself (file() for the embedded engine; s3() only when the
   * operator gave ClickHouse an identity of its own). `stream`: Parquet bytes stream through this process
   * (S3 staging, and a remote server with local staging), so no credential ever reaches ClickHouse.
   * Default: `clickhouse` for the embedded engine writing a local path, else `stream`.
   */
  writer?: 'clickhouse' | 'stream';
  /** Runs after the window was read and before the first file is written (the lease check). */
  beforeWrite?: () => Promise<void>;
  /**
   * Rows one statement writes (one file per partition of its slice), so rows per file at most. Memory
   * does not depend on it (row groups bound that); each statement has a fixed cost, and bigger files
   * suit Iceberg readers. 4M bronze rows make a file of about 80 MB; measured on a 10M-row backlog,
   * 4M instead of 1M per statement took 15% less time. Default 6M, above a batch's 5M: a batch is then
   * one slice, where at 4M a 5M-row batch was two, and each slice's statements rescan the cursor of
   * every partition they read (a dense silver hour, 20M rows: 11% less time a batch, bench/results.md).
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
   * (both read, cast and encode), the server's default for a remote server.
   */
  maxThreads?: number;
  clock?: () => number;
};

const MIB = 1024 * 1024;

const DEFAULTS = {
  maxRowsPerFile: 6_000_000,
  /**
   * The embedded engine hands a streamed query's whole result over at once (a server streams it in
   * chunks), and holds about 3.5 copies of it meanwhile: measured on 1M bronze rows, streaming one 47 MB
   * file added 283 MB to the process, files of 500,000 rows 208 MB, of 250,000 rows 148 MB (ClickHouse
   * writing the files itself: 103 MB). So files streamed from the embedded engine stay small. Peak RSS
   * of the whole process streaming bronze to S3 (`npm run bench`, quiet machine): 250,000 rows a file
   * 512-513 MB, 200,000 486-503 MB, 150,000 448 MB, at the same speed; silver at 200,000: 474 MB. At
   * 200,000 the spread between runs reached the limit, so 150,000.
   */
  embeddedStreamRowsPerFile: 150_000,
  embedded: { rowGroupRows: 65_536, rowGroupBytes: 16 * MIB, maxThreads: 2, boundPartitions: true },
  server: { rowGroupRows: 262_144, rowGroupBytes: 16 * MIB, maxThreads: undefined, boundPartitions: false },
  /**
   * Rows with arrays or maps on the embedded engine. Encoded on both threads, a silver row group of 64K
   * rows (over 16 MiB before encoding) is held by each thread at once: 33 MB more than one encoding
   * thread (`bench:profile`, 500K silver rows). The byte cap is checked per block read, so at the
   * default 64K-row blocks it never cut a group; with 8K-row blocks the cap holds. Measured on a quiet
   * machine (`bench:profile`, 1M silver rows, memory above chDB open): an 8 MiB cap 124-127 MB, 6 MiB
   * 112, 4 MiB 92-99, at the same CPU and wall time; groups of about 16K rows, files the same size.
   */
  embeddedNested: { blockRows: 8192, rowGroupBytes: 4 * MIB },
};

/** Tables with arrays or maps (silver): far more bytes per row, written in smaller row groups. */
export function hasNestedColumns(table: TableConfig): boolean {
  return table.columns.some((c) => /^(Nullable\()?(Array|Map|Tuple|Nested)\(/.test(c.type));
}

/** How a table's rows are written to Parquet by this engine (every writing statement: staging, repair). */
export function writeTuning(
  client: ClickHouseClient,
  table: TableConfig,
  options: { rowGroupRows?: number; maxThreads?: number } = {},
): WriteTuning {
  const engine = isEmbedded(client) ? DEFAULTS.embedded : DEFAULTS.server;
  return {
    rowGroupRows: options.rowGroupRows ?? engine.rowGroupRows,
    rowGroupBytes: engine.rowGroupBytes,
    maxThreads: options.maxThreads ?? engine.maxThreads,
    boundPartitions: engine.boundPartitions,
    ...(isEmbedded(client) && hasNestedColumns(table) ? DEFAULTS.embeddedNested : {}),
  };
}

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
    `SELECT b, k, ${formatHourSql('hs')} AS h, rows, sum FROM (
       SELECT intDiv(toUnixTimestamp64Milli(${cursor}) - ${startMs}, ${bucketMs}) AS b, ${partitionTupleSql(table)} AS k,
         ${hourStartSql(table)} AS hs, count() AS rows, ${checksumAggregateSql(table)} AS sum
       FROM (${select}) GROUP BY b, k, hs)`,
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
 * Every file holds one Iceberg partition and at most about `maxRowsPerFile` rows. Files are created, never
 * replaced: the prefix is one attempt's own (see attempt.ts). ClickHouse writes the files or streams them
 * through this process (nothing is buffered beyond a few upload parts);
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
  const writer = options.writer ?? (target.kind === 'file' && isEmbedded(client) ? 'clickhouse' : 'stream');
  if (writer === 'clickhouse' && target.kind === 'file' && !isEmbedded(client))
    throw new ConfigError(
      `a remote ClickHouse server cannot write the local staging path ${target.dir}; use writer 'stream' or S3 staging`,
      { stagingPrefix: batch.stagingPrefix },
    );
  const tuning = writeTuning(client, table, options);
  const startMs = Date.parse(window.windowStart);
  const endMs = Date.parse(window.windowEnd);
  const bucketMs = bucketMillis(startMs, endMs);
  const counts = await histogram(client, table, window, bucketMs);
  const maxRows =
    options.maxRowsPerFile ??
    (writer === 'stream' && isEmbedded(client)
      ? DEFAULTS.embeddedStreamRowsPerFile
      : DEFAULTS.maxRowsPerFile);
  const statements = planStatements(counts, { startMs, endMs, bucketMs }, maxRows);
  await options.beforeWrite?.();
  await prepareTarget(target);

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
