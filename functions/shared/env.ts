import { z } from 'zod';
import { ConfigError } from '../../src/errors.ts';

/**
 * The environment of every offload function, as the CDK stack sets it (lib/constructs/offload-functions.ts
 * FUNCTION_ENV uses the same names; test/functions checks they agree). Nothing secret lives here:
 * ClickHouse and Postgres credentials are Secrets Manager ARNs, read at the first invocation.
 */
export const LAMBDA_ENV = {
  warehouse: 'WAREHOUSE',
  catalog: 'K2_CATALOG',
  clickhouseSecretArn: 'K2_CLICKHOUSE_SECRET_ARN',
  postgresSecretArn: 'K2_POSTGRES_SECRET_ARN',
  config: 'K2_CONFIG',
  configJson: 'K2_CONFIG_JSON',
  pgSchema: 'K2_PG_SCHEMA',
  leaseSeconds: 'K2_LEASE_SECONDS',
  cycleBudgetSeconds: 'K2_CYCLE_BUDGET_SECONDS',
  stage: 'K2_STAGE',
  s3Endpoint: 'S3_ENDPOINT',
  region: 'AWS_REGION',
} as const;

const secretArn = z
  .string()
  .regex(
    /^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]+$/,
    'must be a Secrets Manager secret ARN (arn:aws:secretsmanager:<region>:<account>:secret:<name>)',
  );

const E = LAMBDA_ENV;
const envSchema = z.object({
  [E.warehouse]: z
    .string()
    .regex(
      /^s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](\/[^\s]*)?$/,
      'must be s3://<bucket> or s3://<bucket>/<prefix>',
    ),
  [E.region]: z.string().min(1, 'must name the AWS region'),
  [E.catalog]: z.enum(['glue', 'postgres']).default('glue'),
  [E.clickhouseSecretArn]: secretArn.optional(),
  [E.postgresSecretArn]: secretArn.optional(),
  [E.config]: z.string().min(1).optional(),
  [E.configJson]: z.string().min(1).optional(),
  [E.pgSchema]: z
    .string()
    .regex(/^[a-z_][a-z0-9_]*$/, 'must be a lower case SQL identifier')
    .default('k2_offload'),
  [E.leaseSeconds]: z.coerce.number().int().min(60).max(86_400).optional(),
  [E.cycleBudgetSeconds]: z.coerce.number().int().min(1).max(86_400).optional(),
  [E.stage]: z.string().min(1).optional(),
  [E.s3Endpoint]: z.url().optional(),
});

export type LambdaEnv = {
  warehouse: string;
  region: string;
  catalog: 'glue' | 'postgres';
  clickhouseSecretArn: string | undefined;
  postgresSecretArn: string | undefined;
  configPath: string | undefined;
  configJson: string | undefined;
  pgSchema: string;
  leaseSeconds: number | undefined;
  cycleBudgetSeconds: number | undefined;
  stage: string | undefined;
  s3Endpoint: string | undefined;
};

const REQUIRED: Record<string, string> = {
  [E.warehouse]: 's3://<bucket> or s3://<bucket>/<prefix>, the warehouse root',
  [E.region]: 'the AWS region (Lambda sets it)',
};

/** Variables that would put a credential in the function's configuration; they go in a secret instead. */
const REFUSED = { CLICKHOUSE_URL: E.clickhouseSecretArn, DATABASE_URL: E.postgresSecretArn } as const;

/** Reads and checks the environment; the error names the first wrong variable and what it must be. */
export function readLambdaEnv(env: NodeJS.ProcessEnv): LambdaEnv {
  for (const [name, instead] of Object.entries(REFUSED))
    if (env[name])
      throw new ConfigError(
        `environment variable ${name} is set, but a function takes no credentials from its environment; store the connection in Secrets Manager and set ${instead} to the secret's ARN`,
        { variable: name },
      );
  const present = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = envSchema.safeParse(present);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const name = String(issue?.path[0] ?? 'environment');
    const value = present[name];
    const message =
      value === undefined
        ? `is not set; it must be ${REQUIRED[name] ?? 'set'}`
        : `${issue?.message}, got ${JSON.stringify(value)}`;
    throw new ConfigError(`environment variable ${name}: ${message}`, { variable: name });
  }
  const e = parsed.data;
  if (e[E.config] && e[E.configJson])
    throw new ConfigError(
      `environment variables ${E.config} and ${E.configJson} are both set; set one of them`,
      {
        variable: E.configJson,
      },
    );
  const warehouse = e[E.warehouse].replace(/\/+$/, '');
  return {
    warehouse,
    region: e[E.region],
    catalog: e[E.catalog],
    clickhouseSecretArn: e[E.clickhouseSecretArn],
    postgresSecretArn: e[E.postgresSecretArn],
    configPath: e[E.config],
    configJson: e[E.configJson],
    pgSchema: e[E.pgSchema],
    leaseSeconds: e[E.leaseSeconds],
    cycleBudgetSeconds: e[E.cycleBudgetSeconds],
    stage: e[E.stage],
    s3Endpoint: e[E.s3Endpoint],
  };
}
