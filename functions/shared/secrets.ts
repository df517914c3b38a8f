import { GetSecretValueCommand, type SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type pg from 'pg';
import { z } from 'zod';
import { ConfigError, UnavailableError } from '../../src/errors.ts';
import { isTransientAwsError } from '../../src/iceberg/s3-store.ts';

/** Only `send` is used, so tests replace it at the SDK edge. */
export type SecretsClientLike = Pick<SecretsManagerClient, 'send'>;

/** Failures that no retry fixes: the ARN, the policy or the key is wrong. */
const PERMANENT = new Set([
  'ResourceNotFoundException',
  'AccessDeniedException',
  'DecryptionFailure',
  'InvalidParameterException',
  'InvalidRequestException',
]);

/**
 * The secret's JSON object. Messages name the variable and the ARN, never the secret's content.
 */
export async function readSecretJson(
  client: SecretsClientLike,
  arn: string,
  variable: string,
): Promise<Record<string, unknown>> {
  let text: string | undefined;
  try {
    text = (await client.send(new GetSecretValueCommand({ SecretId: arn }))).SecretString;
  } catch (error) {
    const name = (error as { name?: string } | null)?.name ?? 'Error';
    const message = `${variable}: cannot read secret ${arn} (${name}: ${(error as Error).message})`;
    if (PERMANENT.has(name) || !isTransientAwsError(error))
      throw new ConfigError(`${message}; check the ARN and that the function's role may read it`, {
        variable,
        arn,
      });
    throw new UnavailableError(
      `${message}; Secrets Manager did not answer, retry`,
      { variable, arn },
      { cause: error },
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text ?? '');
  } catch {
    parsed = undefined;
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
    throw new ConfigError(
      `${variable}: secret ${arn} must hold a JSON object (a SecretString such as {"url": "..."}); it does not`,
      { variable, arn },
    );
  return parsed as Record<string, unknown>;
}

const port = z.coerce.number().int().min(1).max(65_535);

const clickhouseSecretSchema = z.union([
  z.object({ url: z.url({ protocol: /^https?$/ }) }),
  z.object({
    host: z.string().min(1),
    port: port.optional(),
    username: z.string().min(1).optional(),
    password: z.string().optional(),
    database: z.string().min(1).optional(),
    /** `https` (default) or `http`: the ClickHouse HTTP interface. */
    protocol: z.enum(['http', 'https']).optional(),
  }),
]);

/** `{url}` as is, or `{host, port?, username?, password?, database?, protocol?}` as an HTTP(S) URL. */
export function clickhouseUrlFromSecret(secret: Record<string, unknown>, arn: string): string {
  const parsed = clickhouseSecretSchema.safeParse(secret);
  if (!parsed.success)
    throw new ConfigError(
      `ClickHouse secret ${arn} must be {"url": "https://user:password@host:8443/database"} or {"host", "port"?, "username"?, "password"?, "database"?, "protocol"?: "https"|"http"}; fields ${describeFields(secret)}`,
      { arn },
    );
  const s = parsed.data;
  if ('url' in s) return s.url;
  const protocol = s.protocol ?? 'https';
  const url = new URL(`${protocol}://${s.host}:${s.port ?? (protocol === 'https' ? 8443 : 8123)}`);
  if (s.username) url.username = encodeURIComponent(s.username);
  if (s.password) url.password = encodeURIComponent(s.password);
  if (s.database) url.pathname = `/${encodeURIComponent(s.database)}`;
  return url.toString().replace(/\/$/, '');
}

const postgresSecretSchema = z.union([
  z.object({ url: z.string().regex(/^postgres(ql)?:\/\//, 'must be a postgres:// URL') }),
  // The JSON Secrets Manager keeps for an RDS or Aurora database.
  z.object({
    host: z.string().min(1),
    port: port.optional(),
    username: z.string().min(1),
    password: z.string(),
    dbname: z.string().min(1).optional(),
    /** `verify-full` (default: TLS with a trusted certificate), `require` (TLS, unverified) or `disable`. */
    sslmode: z.enum(['verify-full', 'require', 'disable']).optional(),
  }),
]);

/** `{url}`, or the RDS secret shape `{host, port, username, password, dbname}`, as pg pool settings. */
export function postgresConfigFromSecret(secret: Record<string, unknown>, arn: string): pg.PoolConfig {
  const parsed = postgresSecretSchema.safeParse(secret);
  if (!parsed.success)
    throw new ConfigError(
      `Postgres secret ${arn} must be {"url": "postgres://user:password@host:5432/db"} or the RDS shape {"host", "port", "username", "password", "dbname"}; fields ${describeFields(secret)}`,
      { arn },
    );
  const s = parsed.data;
  if ('url' in s) return { connectionString: s.url };
  const sslmode = s.sslmode ?? 'verify-full';
  return {
    host: s.host,
    port: s.port ?? 5432,
    user: s.username,
    password: s.password,
    database: s.dbname ?? 'postgres',
    ...(sslmode === 'disable' ? {} : { ssl: { rejectUnauthorized: sslmode === 'verify-full' } }),
  };
}

/** Which fields a secret has (names only, so a wrong shape can be fixed without printing values). */
function describeFields(secret: Record<string, unknown>): string {
  const names = Object.keys(secret);
  return names.length === 0 ? 'none present' : `present: ${names.join(', ')}`;
}
