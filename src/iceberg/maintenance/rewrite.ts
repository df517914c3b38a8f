import type { ClickHouseClient } from '@clickhouse/client';
import { ident, stringLiteral } from '../../clickhouse/sql.ts';
import { ConfigError, InputError } from '../../errors.ts';
import { localPath } from '../local-store.ts';

/** Several Parquet files of one partition rewritten into `output`, with `columns` in this order. */
export type RewriteJob = { inputs: string[]; output: string; columns: string[] };
/** Writes the rewritten file; compaction checks its rows and partition before committing it. */
export type Rewriter = (job: RewriteJob) => Promise<void>;

/** Credentials and endpoint ClickHouse uses for `s3()` (moto or LocalStack: `endpoint`). */
export type S3Access = {
  endpoint?: string | undefined;
  region?: string | undefined;
  accessKeyId?: string | undefined;
  secretAccessKey?: string | undefined;
  sessionToken?: string | undefined;
};

// Glob characters would make ClickHouse read other files than the one named.
const GLOB = /[*?{}[\]]/;

function checked(uri: string): string {
  if (GLOB.test(uri))
    throw new InputError(`${uri} holds a glob character (* ? { } [ ]), which ClickHouse would expand`, {
      uri,
    });
  return uri;
}

function s3Url(uri: string, access: S3Access): string {
  const match = /^s3:\/\/([^/]+)\/(.+)$/.exec(uri);
  if (!match) throw new InputError(`${uri} is not an s3://bucket/key URI`, { uri });
  const [, bucket, key] = match as unknown as [string, string, string];
  if (access.endpoint) {
    if (!/^https?:\/\/[^\s'\\]+$/.test(access.endpoint))
      throw new ConfigError(`S3 endpoint ${JSON.stringify(access.endpoint)} must be a plain http(s) URL`, {
        endpoint: access.endpoint,
      });
    return `${access.endpoint.replace(/\/+$/, '')}/${bucket}/${key}`;
  }
  return `https://${bucket}.s3.${access.region ?? 'us-east-1'}.amazonaws.com/${key}`;
}

/** The ClickHouse table function reading or writing one Parquet file of the warehouse. */
export function parquetFunction(uri: string, access: S3Access = {}): string {
  checked(uri);
  if (uri.startsWith('file:')) return `file(${stringLiteral(localPath(uri))}, 'Parquet')`;
  if (!uri.startsWith('s3://'))
    throw new InputError(`${uri}: compaction through ClickHouse reads file:// and s3:// warehouses only`, {
      uri,
    });
  const url = stringLiteral(s3Url(uri, access));
  if (!access.accessKeyId || !access.secretAccessKey) return `s3(${url}, 'Parquet')`;
  const secrets = [
    access.accessKeyId,
    access.secretAccessKey,
    ...(access.sessionToken ? [access.sessionToken] : []),
  ];
  return `s3(${url}, ${secrets.map(stringLiteral).join(', ')}, 'Parquet')`;
}

/** The statement that rewrites a job: one INSERT of the inputs' rows, columns picked by name. */
export function rewriteSql(job: RewriteJob, access: S3Access = {}): string {
  const columns = job.columns.map((c) => ident(c, 'column')).join(', ');
  const union = job.inputs
    .map((uri) => `SELECT ${columns} FROM ${parquetFunction(uri, access)}`)
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
