import { GlueClient } from '@aws-sdk/client-glue';
import { S3Client } from '@aws-sdk/client-s3';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { ClickHouseClient } from '@clickhouse/client';
import pg from 'pg';
import { openClickHouse } from '../../src/clickhouse/client.ts';
import { loadConfig, parseConfig } from '../../src/config/load.ts';
import type { OffloadConfig } from '../../src/config/schema.ts';
import { ConfigError, NotConfiguredError } from '../../src/errors.ts';
import type { Catalog } from '../../src/iceberg/catalog.ts';
import { createGlueCatalog } from '../../src/iceberg/glue-catalog.ts';
import { createPostgresCatalog } from '../../src/iceberg/postgres-catalog.ts';
import { S3ObjectStore } from '../../src/iceberg/s3-store.ts';
import { renderEmfLines } from '../../src/metrics/emf.ts';
import { DEFAULT_LEASE_SECONDS, type PipelineDeps } from '../../src/pipeline/deps.ts';
import { NO_FAULTS } from '../../src/pipeline/faults.ts';
import type { FunctionAccess } from '../../src/runtime/access.ts';
import { isPlaceholderSecret, notConfiguredMessage } from '../../src/runtime/not-configured.ts';
import { s3StagingFromEnv } from '../../src/stage/targets.ts';
import { createPostgresWatermarkStore, type WatermarkStore } from '../../src/watermark/store.ts';
import { LAMBDA_ENV, type LambdaEnv, readLambdaEnv } from './env.ts';
import {
  clickhouseUrlFromSecret,
  postgresConfigFromSecret,
  readSecretJson,
  type SecretsClientLike,
} from './secrets.ts';

/** What a function talks to besides S3 and the catalog (src/runtime/access.ts declares it per function). */
export type Needs = Pick<FunctionAccess, 'clickhouse' | 'postgres' | 'migrate'>;

/** An AWS SDK v3 client, as far as a middleware hook sees it. */
export type SdkClient = { middlewareStack: { add: (...args: never[]) => void } };

export type LambdaDepsOptions = {
  env?: NodeJS.ProcessEnv;
  secrets?: SecretsClientLike;
  glue?: GlueClient;
  /** Where EMF and log lines go; stdout in Lambda. */
  write?: (text: string) => void;
  clock?: () => Date;
  /** Called with every AWS SDK client the function uses, e.g. to add a middleware (tests record calls). */
  onClient?: (client: SdkClient) => void;
};

/**
 * Lambda patches `console.log` to prefix each message with a timestamp and request id, and CloudWatch
 * only extracts metrics from lines that are pure JSON; so EMF and log lines go straight to stdout, one
 * JSON object per line (what Powertools does too).
 */
const stdout = (text: string) => {
  process.stdout.write(text);
};

/** A part this function was not given (no ARN in its environment): any use is a wiring error, named. */
function notWired<T extends object>(what: string, variable: string): T {
  return new Proxy({} as T, {
    get(_, property) {
      if (property === 'then') return undefined;
      throw new ConfigError(
        `${what} is not available to this function: ${variable} is not in its environment; grant it in lib/constructs/offload-functions.ts (FUNCTION_ACCESS)`,
        { variable },
      );
    },
  });
}

async function tableConfig(env: LambdaEnv): Promise<OffloadConfig> {
  if (env.configJson) {
    let raw: unknown;
    try {
      raw = JSON.parse(env.configJson);
    } catch (error) {
      throw new ConfigError(
        `environment variable ${LAMBDA_ENV.configJson} is not JSON: ${(error as Error).message}`,
        {
          variable: LAMBDA_ENV.configJson,
        },
      );
    }
    return parseConfig(raw, LAMBDA_ENV.configJson);
  }
  return loadConfig(env.configPath);
}

/** A part whose secret still holds the placeholder: any use says what to configure. */
function notConfigured<T extends object>(message: string): T {
  return new Proxy({} as T, {
    get(_, property) {
      if (property === 'then') return undefined;
      throw new NotConfiguredError(message);
    },
  });
}

const missing = (variable: string) =>
  new ConfigError(`environment variable ${variable}: must be set (the ARN of a Secrets Manager secret)`, {
    variable,
  });

/** Builds the deps of a cycle step for AWS: secrets by ARN, S3, Glue (or the Postgres catalog). */
export async function buildLambdaDeps(needs: Needs, options: LambdaDepsOptions = {}): Promise<PipelineDeps> {
  const rawEnv = options.env ?? process.env;
  const env = readLambdaEnv(rawEnv);
  const config = await tableConfig(env);
  const hook = <T>(client: T): T => {
    if (options.onClient && client && typeof client === 'object' && 'middlewareStack' in client)
      options.onClient(client as unknown as SdkClient);
    return client;
  };
  const secrets = hook(options.secrets ?? new SecretsManagerClient({ region: env.region }));

  // Secrets still holding the deploy-time placeholder: the stage is not configured yet.
  const unconfigured: string[] = [];
  const readSecret = async (arn: string, variable: string) => {
    const secret = await readSecretJson(secrets, arn, variable);
    if (!isPlaceholderSecret(secret)) return secret;
    unconfigured.push(notConfiguredMessage(arn));
    return undefined;
  };

  let clickhouse = notWired<ClickHouseClient>('ClickHouse', LAMBDA_ENV.clickhouseSecretArn);
  if (needs.clickhouse) {
    const arn = env.clickhouseSecretArn;
    if (!arn) throw missing(LAMBDA_ENV.clickhouseSecretArn);
    const secret = await readSecret(arn, LAMBDA_ENV.clickhouseSecretArn);
    if (secret)
      // A remote server only: the embedded engine is never bundled into a function.
      clickhouse = openClickHouse({ url: clickhouseUrlFromSecret(secret, arn), dataDir: '/tmp/unused' });
    else clickhouse = notConfigured<ClickHouseClient>(notConfiguredMessage(arn));
  }

  let pool: pg.Pool | undefined;
  let watermarks = notWired<WatermarkStore>('Postgres (watermarks)', LAMBDA_ENV.postgresSecretArn);
  const postgresSecret = async () => {
    const arn = env.postgresSecretArn;
    if (!arn) throw missing(LAMBDA_ENV.postgresSecretArn);
    return { arn, secret: await readSecret(arn, LAMBDA_ENV.postgresSecretArn) };
  };
  const postgres = needs.postgres || env.catalog === 'postgres' ? await postgresSecret() : undefined;
  if (postgres && !postgres.secret) watermarks = notConfigured(notConfiguredMessage(postgres.arn));
  else if (postgres?.secret) {
    const settings = postgresConfigFromSecret(postgres.secret, postgres.arn);
    // A few connections per container: one invocation runs one step at a time.
    pool = new pg.Pool({ ...settings, max: 3, idleTimeoutMillis: 60_000, connectionTimeoutMillis: 10_000 });
    // An idle connection dropped while the container was frozen must not crash the process.
    pool.on('error', () => undefined);
    watermarks = createPostgresWatermarkStore(pool, { schema: env.pgSchema });
    if (needs.migrate)
      try {
        // Idempotent and serialised by an advisory lock: containers starting together do not race.
        await watermarks.migrate();
      } catch (error) {
        await pool.end().catch(() => undefined);
        throw error;
      }
  }

  const catalog: Catalog =
    pool && env.catalog === 'postgres'
      ? createPostgresCatalog(pool, { catalogName: 'k2' })
      : glueCatalog(hook(options.glue ?? new GlueClient({ region: env.region })));
  const write = options.write ?? stdout;
  const clock = options.clock ?? (() => new Date());
  const labels = {
    ...(env.stage ? { stage: env.stage } : {}),
    ...(rawEnv.AWS_LAMBDA_FUNCTION_NAME ? { function: rawEnv.AWS_LAMBDA_FUNCTION_NAME } : {}),
  };
  return {
    ...(unconfigured.length > 0 ? { notConfigured: unconfigured.join('; ') } : {}),
    config,
    clickhouse,
    watermarks,
    catalog,
    store: new S3ObjectStore({ client: hook(s3Client(env)) }),
    warehouse: env.warehouse,
    s3: {
      region: env.region,
      ...(env.s3Endpoint ? { endpoint: env.s3Endpoint } : {}),
      staging: s3StagingFromEnv(rawEnv),
    },
    clock,
    leaseSeconds: env.leaseSeconds ?? DEFAULT_LEASE_SECONDS,
    cycleBudgetSeconds: env.cycleBudgetSeconds,
    faults: NO_FAULTS,
    metrics: (records) => {
      if (records.length > 0) write(renderEmfLines(records));
    },
    log: (line) =>
      write(`${JSON.stringify({ level: 'info', time: clock().toISOString(), ...labels, ...line })}\n`),
  };
}

/**
 * S3 itself, or an S3-compatible server at `S3_ENDPOINT` (LocalStack, moto) with path-style addressing.
 * Those servers echo an object's upload Content-MD5 on ranged reads, which the SDK would reject as a
 * checksum mismatch; S3 never sends it, so response checks stay on there.
 */
function s3Client(env: LambdaEnv): S3Client {
  if (!env.s3Endpoint) return new S3Client({ region: env.region });
  return new S3Client({
    region: env.region,
    endpoint: env.s3Endpoint,
    forcePathStyle: true,
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

/** Glue database = the table's target namespace (the stack checks every table's namespace is its database). */
const glueCatalog = (client: GlueClient) =>
  createGlueCatalog(client, {
    databaseName: (namespace: string) => namespace,
  });

/**
 * The deps of a function, built at its first invocation and kept for the container's life (one pool, one
 * ClickHouse client, one set of SDK clients). A failed build is not kept, nor one that found the stage not
 * configured: the next invocation tries again.
 * Nothing is read at import time, so a bundle loads without its environment.
 */
export function lambdaDeps(needs: Needs, options: LambdaDepsOptions = {}): () => Promise<PipelineDeps> {
  let cached: Promise<PipelineDeps> | undefined;
  return () => {
    cached ??= buildLambdaDeps(needs, options).then(
      (deps) => {
        // Not configured yet: read the secrets again next time, so filling them takes effect at once.
        if (deps.notConfigured) cached = undefined;
        return deps;
      },
      (error: unknown) => {
        cached = undefined;
        throw error;
      },
    );
    return cached;
  };
}
