import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { z } from 'zod';
import { ConfigError } from '../errors.ts';

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
  WAREHOUSE: z.string().min(1).default('./warehouse'),
  S3_ENDPOINT: z.url().optional(),
  AWS_REGION: z.string().default('us-east-1'),
  K2_HOME: z.string().min(1).default('.k2'),
  K2_CATALOG: z.enum(['postgres', 'glue', 'path']).default('postgres'),
  K2_GLUE_DATABASE_PREFIX: z.string().default(''),
  K2_PG_SCHEMA: z
    .string()
    .regex(/^[a-z_][a-z0-9_]*$/)
    .default('k2_offload'),
});

export type Settings = {
  clickhouseUrl: string | undefined;
  databaseUrl: string | undefined;
  /** Warehouse root as an absolute URI: `file:///...` or `s3://bucket/prefix`. */
  warehouse: string;
  s3Endpoint: string | undefined;
  region: string;
  home: string;
  catalog: 'postgres' | 'glue' | 'path';
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

export function readSettings(env: NodeJS.ProcessEnv = process.env): Settings {
  const parsed = settingsSchema.safeParse(
    Object.fromEntries(Object.entries(env).filter(([, v]) => v !== '')),
  );
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const name = String(issue?.path[0] ?? 'environment');
    throw new ConfigError(`environment variable ${name}: ${issue?.message}`, { variable: name });
  }
  const e = parsed.data;
  const warehouse = toWarehouseUri(e.WAREHOUSE);
  return {
    clickhouseUrl: e.CLICKHOUSE_URL,
    databaseUrl: e.DATABASE_URL,
    warehouse,
    s3Endpoint: e.S3_ENDPOINT,
    region: e.AWS_REGION,
    home: resolve(e.K2_HOME),
    catalog: e.K2_CATALOG,
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
    return '(unparseable URL)';
  }
}
