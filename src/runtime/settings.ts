import { dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { z } from 'zod';
import { ConfigError } from '../errors.ts';
import { findHome, HOME_NAME } from './home.ts';

/**
 * Where the components are, from environment variables, with embedded defaults so that a laptop needs
 * nothing installed: chDB for ClickHouse, an embedded Postgres, a local warehouse folder.
 */
const settingsSchema = z.object({
  CLICKHOUSE_URL: z.url().optional(),
  DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// URL')
    .optional(),
  WAREHOUSE: z.string().min(1).optional(),
  S3_ENDPOINT: z.url().optional(),
  AWS_REGION: z.string().default('us-east-1'),
  K2_HOME: z.string().min(1).optional(),
  K2_CATALOG: z.enum(['postgres', 'glue', 'path']).default('postgres'),
  K2_GLUE_DATABASE_PREFIX: z.string().default(''),
  // The `catalog_name` column of the JDBC catalog's tables: other engines name the catalog the same way.
  K2_CATALOG_NAME: z
    .string()
    .regex(/^[A-Za-z_][A-Za-z0-9_-]*$/, 'must be letters, digits, _ or -, starting with a letter or _')
    .default('k2'),
  K2_PG_SCHEMA: z
    .string()
    .regex(/^[a-z_][a-z0-9_]*$/)
    .default('k2_offload'),
});

/** A value of the right shape for each variable, shown when the one given is refused. */
const EXAMPLES: Record<string, string> = {
  CLICKHOUSE_URL: 'http://localhost:8123 (the HTTP interface, with its scheme and port)',
  DATABASE_URL: 'postgres://user@localhost:5432/k2',
  S3_ENDPOINT: 'http://127.0.0.1:9000',
  K2_CATALOG: 'postgres (or glue, path)',
  K2_CATALOG_NAME: 'k2',
  K2_PG_SCHEMA: 'k2_offload',
};

export type Settings = {
  clickhouseUrl: string | undefined;
  databaseUrl: string | undefined;
  /** Warehouse root as an absolute URI: `file:///...` or `s3://bucket/prefix`. */
  warehouse: string;
  s3Endpoint: string | undefined;
  region: string;
  home: string;
  /** K2_HOME was given, or a `.k2` folder was found here or above; false: `home` would be created. */
  homeExists: boolean;
  catalog: 'postgres' | 'glue' | 'path';
  /** Name of the catalog in the Postgres (JDBC) catalog's rows. */
  catalogName: string;
  pgSchema: string;
};

/** A path or URI as an absolute URI; relative paths are taken from the working directory. */
export function toWarehouseUri(value: string): string {
  if (/^s3:\/\//.test(value)) return value.replace(/\/+$/, '');
  if (/^file:\/\//.test(value)) return value.replace(/\/+$/, '');
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(value))
    throw new ConfigError(
      `WAREHOUSE ${JSON.stringify(value)}: only local paths, file:// and s3:// are supported`,
      { value },
    );
  return pathToFileURL(resolve(value)).href.replace(/\/+$/, '');
}

export function readSettings(env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): Settings {
  const parsed = settingsSchema.safeParse(
    Object.fromEntries(Object.entries(env).filter(([, v]) => v !== '')),
  );
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const name = String(issue?.path[0] ?? 'environment');
    const value = env[name];
    const shown =
      value === undefined ? '' : ` ${JSON.stringify(/URL|ENDPOINT/.test(name) ? redactUrl(value) : value)}`;
    const example = EXAMPLES[name] ? `; for example ${name}=${EXAMPLES[name]}` : '';
    throw new ConfigError(`environment variable ${name}${shown}: ${issue?.message}${example}`, {
      variable: name,
    });
  }
  const e = parsed.data;
  // As git finds its repository: without K2_HOME, the nearest .k2 here or above, and its warehouse
  // beside it; with none, the current folder (created only by `demo`, see openRuntime).
  const found = e.K2_HOME ? undefined : findHome(cwd);
  const home = e.K2_HOME ? resolve(cwd, e.K2_HOME) : (found ?? resolve(cwd, HOME_NAME));
  const warehouse = toWarehouseUri(
    e.WAREHOUSE ?? (found ? join(dirname(found), 'warehouse') : resolve(cwd, 'warehouse')),
  );
  return {
    clickhouseUrl: e.CLICKHOUSE_URL,
    databaseUrl: e.DATABASE_URL,
    warehouse,
    s3Endpoint: e.S3_ENDPOINT,
    region: e.AWS_REGION,
    home,
    homeExists: e.K2_HOME !== undefined || found !== undefined,
    catalog: e.K2_CATALOG,
    catalogName: e.K2_CATALOG_NAME,
    pgSchema: e.K2_PG_SCHEMA,
  };
}

/** Strips a password from a connection URL before it is printed. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    // Not a URL, but it may still carry `user:password@`: hide what sits between the colon and the @.
    return url.replace(/:[^:@/]*@/, ':***@');
  }
}
