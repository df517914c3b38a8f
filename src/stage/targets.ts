import { fileURLToPath } from 'node:url';
import { ident, stringLiteral } from '../clickhouse/sql.ts';
import { ConfigError, InputError } from '../errors.ts';

/**
 * Where ClickHouse's own `s3()` reads and writes go (moto/LocalStack: `endpoint`), and under which
 * identity. There is deliberately no place for keys: SQL lands in ClickHouse's query log and system
 * tables, so ClickHouse uses either a named collection the operator created on the server (the SQL names
 * it, never a secret) or the server's own identity (its instance role or environment).
 */
export type S3Access = {
  endpoint?: string | undefined;
  region?: string | undefined;
  namedCollection?: string | undefined;
};

/**
 * How staged files reach S3. `stream` (the default): ClickHouse's Parquet output streams through this
 * process into a multipart upload, so ClickHouse needs no access to S3 at all. `clickhouse`: the operator
 * gave ClickHouse an identity of its own, a named collection created on the server
 * (`namedCollection`) or the server's own role/environment (none named); ClickHouse then writes the
 * files itself with s3(), and the SQL names the collection, never a secret.
 */
export type S3Staging = { writer: 'stream' } | { writer: 'clickhouse'; namedCollection?: string | undefined };

/** `K2_STAGING_S3_WRITER` (`stream` | `clickhouse`) and `K2_STAGING_S3_NAMED_COLLECTION`. */
export function s3StagingFromEnv(env: Record<string, string | undefined>): S3Staging {
  const writer = env.K2_STAGING_S3_WRITER || 'stream';
  const namedCollection = env.K2_STAGING_S3_NAMED_COLLECTION || undefined;
  if (writer !== 'stream' && writer !== 'clickhouse')
    throw new ConfigError(
      `K2_STAGING_S3_WRITER=${JSON.stringify(writer)} is not a staging writer; use "stream" (the default) or "clickhouse"`,
      { K2_STAGING_S3_WRITER: writer },
    );
  if (writer === 'stream') {
    if (namedCollection)
      throw new ConfigError(
        'K2_STAGING_S3_NAMED_COLLECTION is set but K2_STAGING_S3_WRITER is not "clickhouse"; set both to let ClickHouse write staged files as that collection, or neither',
        { K2_STAGING_S3_NAMED_COLLECTION: namedCollection },
      );
    return { writer };
  }
  if (namedCollection) ident(namedCollection, 'K2_STAGING_S3_NAMED_COLLECTION');
  return { writer, namedCollection };
}

export type StagingTarget =
  | { kind: 'file'; prefix: string; dir: string }
  | { kind: 's3'; prefix: string; bucket: string; key: string };

/**
 * Characters a staging path may contain. Quotes, backslashes, spaces and the glob characters
 * `* ? { } [ ]` (which ClickHouse's file() and s3() expand) are refused rather than escaped.
 */
const SAFE_PATH = /^[A-Za-z0-9._~\-/=+@,:%]*$/;

/** Parses `file:///abs/dir/` or `s3://bucket/key/prefix/`; the result always ends with `/`. */
export function parseStagingPrefix(stagingPrefix: string): StagingTarget {
  const prefix = stagingPrefix.endsWith('/') ? stagingPrefix : `${stagingPrefix}/`;
  const bad = (why: string): never => {
    throw new InputError(
      `staging prefix ${JSON.stringify(stagingPrefix)} ${why}; use file:///absolute/dir/ or s3://bucket/prefix/ with letters, digits and . _ ~ - / = + @ , : %`,
      { stagingPrefix },
    );
  };
  if (prefix.startsWith('file://')) {
    let dir: string;
    try {
      dir = fileURLToPath(prefix);
    } catch {
      return bad('is not a valid file URI');
    }
    if (!SAFE_PATH.test(dir)) bad('contains characters ClickHouse paths cannot carry safely');
    return { kind: 'file', prefix, dir: dir.endsWith('/') ? dir : `${dir}/` };
  }
  const s3 = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])\/(.*)$/.exec(prefix);
  if (s3) {
    const key = s3[2] as string;
    if (!SAFE_PATH.test(key) || key.startsWith('/')) bad('has a key ClickHouse paths cannot carry safely');
    return { kind: 's3', prefix, bucket: s3[1] as string, key };
  }
  return bad('is neither a file:// nor an s3:// URI');
}

/** The HTTP(S) URL ClickHouse's s3() function wants for a key: path style on a custom endpoint. */
export function s3HttpUrl(bucket: string, key: string, access: S3Access = {}): string {
  if (access.endpoint) {
    let endpoint: URL;
    try {
      endpoint = new URL(access.endpoint);
    } catch {
      throw new ConfigError(`S3 endpoint ${JSON.stringify(access.endpoint)} is not a URL`, {
        endpoint: access.endpoint,
      });
    }
    if (!/^https?:$/.test(endpoint.protocol) || !SAFE_PATH.test(endpoint.host + endpoint.pathname))
      throw new ConfigError(`S3 endpoint ${JSON.stringify(access.endpoint)} must be a plain http(s) URL`, {
        endpoint: access.endpoint,
      });
    return `${endpoint.origin}${endpoint.pathname.replace(/\/+$/, '')}/${bucket}/${key}`;
  }
  const region = access.region ?? 'us-east-1';
  if (!/^[a-z0-9-]+$/.test(region))
    throw new ConfigError(`S3 region ${JSON.stringify(region)} is not a region name`, { region });
  return `https://${bucket}.s3.${region}.amazonaws.com/${key}`;
}

/**
 * The table function ClickHouse reads or writes `<prefix><name>` through; `name` may hold ClickHouse's
 * `{_partition_id}` placeholder or a `*` glob (we write both; neither comes from input).
 */
export function tableFunctionSql(
  target: StagingTarget,
  name: string,
  access: S3Access = {},
  format: 'Parquet' | 'ParquetMetadata' = 'Parquet',
): string {
  if (target.kind === 'file') return `file(${stringLiteral(`${target.dir}${name}`)}, '${format}')`;
  const url = stringLiteral(s3HttpUrl(target.bucket, `${target.key}${name}`, access));
  if (!access.namedCollection) return `s3(${url}, '${format}')`;
  return `s3(${ident(access.namedCollection, 'named collection')}, url = ${url}, format = '${format}')`;
}

/** `part-00000.parquet`: five digits, more only past 99999 files. */
export function partName(index: number): string {
  return `part-${String(index).padStart(5, '0')}.parquet`;
}
