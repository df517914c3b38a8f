import type { ClickHouseClient } from '@clickhouse/client';
import { ident } from '../../clickhouse/sql.ts';
import { InputError } from '../../errors.ts';
import { parseStagingPrefix, type S3Access, tableFunctionSql } from '../../stage/targets.ts';

export type { S3Access };

/**
 * Several Parquet files of one partition rewritten into `output`, with `columns` in this order.
 * `sources[i]` says where a column is in input `i` when not under its name: its name when the file was
 * written (a rename since), or null when the file has no such column (written before it was added).
 */
export type RewriteJob = {
  inputs: string[];
  output: string;
  columns: string[];
  sources?: Array<Record<string, string | null>>;
};
/** Writes the rewritten file; compaction checks its rows and partition before committing it. */
export type Rewriter = (job: RewriteJob) => Promise<void>;

// Glob characters would make ClickHouse read other files than the one named.
const GLOB = /[*?{}[\]]/;

/** The ClickHouse table function reading or writing one Parquet file of the warehouse. */
export function parquetFunction(uri: string, access: S3Access = {}): string {
  const slash = uri.lastIndexOf('/');
  const name = uri.slice(slash + 1);
  if (GLOB.test(name))
    throw new InputError(`${uri} holds a glob character (* ? { } [ ]), which ClickHouse would expand`, {
      uri,
    });
  if (!uri.startsWith('file://') && !uri.startsWith('s3://'))
    throw new InputError(`${uri}: compaction through ClickHouse reads file:// and s3:// warehouses only`, {
      uri,
    });
  // The staging area's rules for paths ClickHouse can carry safely hold for the warehouse too.
  let folder: ReturnType<typeof parseStagingPrefix>;
  try {
    folder = parseStagingPrefix(uri.slice(0, slash + 1));
  } catch (error) {
    throw new InputError(`${uri} cannot be handed to ClickHouse: ${(error as Error).message}`, { uri });
  }
  return tableFunctionSql(folder, name, access);
}

/** The statement that rewrites a job: one INSERT of the inputs' rows, columns picked by name. */
export function rewriteSql(job: RewriteJob, access: S3Access = {}): string {
  const select = (i: number) =>
    job.columns
      .map((c) => {
        const source = job.sources?.[i]?.[c];
        if (source === undefined) return ident(c, 'column');
        return `${source === null ? 'NULL' : ident(source, 'column')} AS ${ident(c, 'column')}`;
      })
      .join(', ');
  const union = job.inputs
    .map((uri, i) => `SELECT ${select(i)} FROM ${parquetFunction(uri, access)}`)
    .join(' UNION ALL ');
  const truncate = job.output.startsWith('s3://')
    ? 's3_truncate_on_insert'
    : 'engine_file_truncate_on_insert';
  return `INSERT INTO FUNCTION ${parquetFunction(job.output, access)} ${union}
    SETTINGS ${truncate} = 1, output_format_parquet_compression_method = 'zstd'`;
}

/** Rewrites with ClickHouse (a server, or chDB in-process): the rows never pass through this process. */
export function clickhouseRewriter(client: ClickHouseClient, access: S3Access = {}): Rewriter {
  return async (job) => {
    await client.command({ query: rewriteSql(job, access) });
  };
}
