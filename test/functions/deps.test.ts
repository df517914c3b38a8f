import { GetSecretValueCommand } from '@aws-sdk/client-secrets-manager';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHandler as planCycleHandler } from '../../functions/plan-cycle/handler.ts';
import { buildLambdaDeps, lambdaDeps } from '../../functions/shared/deps.ts';
import type { SecretsClientLike } from '../../functions/shared/secrets.ts';
import { needs as stageBatchNeeds } from '../../functions/stage-batch/index.ts';
import { ConfigError, LeaseError, NotConfiguredError, UnavailableError } from '../../src/errors.ts';
import { assertLeaseHeld } from '../../src/pipeline/lease.ts';
import { SECRET_PLACEHOLDER } from '../../src/runtime/not-configured.ts';
import { freshDatabase } from '../support/pg.ts';

const ACCOUNT = '123456789012';
const arn = (name: string) => `arn:aws:secretsmanager:eu-west-1:${ACCOUNT}:secret:${name}-AbCdEf`;
const PG_ARN = arn('k2/postgres');
const CH_ARN = arn('k2/clickhouse');

/** Secrets Manager at its SDK edge: GetSecretValue answers from a map, and counts its calls. */
function fakeSecrets(values: Record<string, unknown>, fail?: () => Error | undefined) {
  const calls: string[] = [];
  const client: SecretsClientLike = {
    send: (async (command: unknown) => {
      if (!(command instanceof GetSecretValueCommand)) throw new Error('unexpected command');
      const id = command.input.SecretId as string;
      calls.push(id);
      const error = fail?.();
      if (error) throw error;
      if (!(id in values))
        throw Object.assign(new Error('no such secret'), { name: 'ResourceNotFoundException' });
      return { SecretString: JSON.stringify(values[id]) };
    }) as SecretsClientLike['send'],
  };
  return { client, calls };
}

describe('function deps on AWS', () => {
  let db: Awaited<ReturnType<typeof freshDatabase>>;
  let rds: Record<string, unknown>;
  const closers: Array<() => Promise<void>> = [];
  beforeAll(async () => {
    db = await freshDatabase();
    const u = new URL(db.url);
    // The JSON RDS keeps for a database: the pool is built from fields, not from a URL.
    rds = {
      engine: 'postgres',
      host: u.hostname,
      port: Number(u.port || 5432),
      username: decodeURIComponent(u.username) || 'postgres',
      password: decodeURIComponent(u.password),
      dbname: u.pathname.slice(1),
      sslmode: 'disable',
    };
  });
  afterAll(async () => {
    for (const close of closers) await close();
    await db?.drop();
  });

  const env = (extra: Record<string, string> = {}) => ({
    WAREHOUSE: 's3://k2-warehouse',
    AWS_REGION: 'eu-west-1',
    K2_POSTGRES_SECRET_ARN: PG_ARN,
    K2_CLICKHOUSE_SECRET_ARN: CH_ARN,
    ...extra,
  });

  it('connects to Postgres from an RDS secret and migrates the watermark tables', async () => {
    const secrets = fakeSecrets({ [PG_ARN]: rds, [CH_ARN]: { host: 'ch.internal', password: 'x' } });
    const deps = await buildLambdaDeps(
      { clickhouse: true, postgres: true, migrate: true },
      { env: env({ K2_STAGE: 'test' }), secrets: secrets.client, write: () => {} },
    );
    closers.push(() => deps.clickhouse.close());
    await deps.watermarks.ensureTables([
      { table: 'bronze_trades_binance', initialCursor: '2026-01-01T00:00:00Z' },
    ]);
    expect((await deps.watermarks.list()).map((w) => w.table)).toEqual(['bronze_trades_binance']);
    expect(deps.config.tables).toHaveLength(10);
    expect(deps.warehouse).toBe('s3://k2-warehouse');
    expect(deps.s3?.region).toBe('eu-west-1');
    expect(secrets.calls.sort()).toEqual([CH_ARN, PG_ARN].sort());
  });

  it('gives StageBatch the watermarks with the Glue catalog: it checks its lease before writing', async () => {
    const secrets = fakeSecrets({ [PG_ARN]: rds, [CH_ARN]: { host: 'ch.internal', password: 'x' } });
    const deps = await buildLambdaDeps(stageBatchNeeds, {
      env: env({ K2_CATALOG: 'glue' }),
      secrets: secrets.client,
      write: () => {},
    });
    closers.push(() => deps.clickhouse.close());
    await expect(assertLeaseHeld(deps.watermarks, 'bronze_trades_binance', '1')).rejects.toBeInstanceOf(
      LeaseError,
    );
    expect(deps.s3?.staging).toEqual({ writer: 'stream' });
  });

  it('uses the Postgres catalog when asked, in the same database', async () => {
    const secrets = fakeSecrets({ [PG_ARN]: { url: db.url } });
    const deps = await buildLambdaDeps(
      { clickhouse: false, postgres: false },
      { env: env({ K2_CATALOG: 'postgres' }), secrets: secrets.client },
    );
    expect(
      await deps.catalog.currentMetadataLocation({ namespace: 'cold', name: 'nothing_here' }),
    ).toBeUndefined();
  });

  it('a part the function was not given fails on use, naming the variable that wires it', async () => {
    const secrets = fakeSecrets({});
    const deps = await buildLambdaDeps(
      { clickhouse: false, postgres: false },
      { env: env(), secrets: secrets.client },
    );
    expect(secrets.calls).toEqual([]);
    expect(() => deps.watermarks.get('bronze_trades_binance')).toThrow(ConfigError);
    expect(() => deps.watermarks.get('bronze_trades_binance')).toThrow(
      /K2_POSTGRES_SECRET_ARN is not in its environment/,
    );
    expect(() => deps.clickhouse.query({ query: 'SELECT 1' })).toThrow(/K2_CLICKHOUSE_SECRET_ARN/);
  });

  it('only the planner migrates: the other steps run no DDL and need no DDL rights', async () => {
    const other = await freshDatabase();
    closers.push(other.drop);
    const secrets = fakeSecrets({ [PG_ARN]: { url: other.url } });
    const deps = await buildLambdaDeps(
      { clickhouse: false, postgres: true },
      { env: env(), secrets: secrets.client },
    );
    const watermarkTables = async () =>
      (await deps.watermarks.list().then(
        () => 'present',
        (e: Error) => e.message,
      )) as string;
    expect(await watermarkTables()).toMatch(/watermark tables do not exist in schema k2_offload/);
    await buildLambdaDeps(
      { clickhouse: false, postgres: true, migrate: true },
      { env: env(), secrets: secrets.client },
    );
    expect(await watermarkTables()).toBe('present');
  });

  it('a needed ARN that is missing fails before any call, naming it', async () => {
    const secrets = fakeSecrets({});
    const { K2_POSTGRES_SECRET_ARN: _, ...withoutPg } = env();
    const attempt = buildLambdaDeps(
      { clickhouse: false, postgres: true },
      { env: withoutPg, secrets: secrets.client },
    );
    await expect(attempt).rejects.toThrow(ConfigError);
    await expect(attempt).rejects.toThrow(/environment variable K2_POSTGRES_SECRET_ARN: must be set/);
    expect(secrets.calls).toEqual([]);
  });

  it('takes the table config from K2_CONFIG_JSON, validated like a file', async () => {
    const attempt = buildLambdaDeps(
      { clickhouse: false, postgres: false },
      { env: env({ K2_CONFIG_JSON: '{"tables": [{"name": "x"}]}' }), secrets: fakeSecrets({}).client },
    );
    await expect(attempt).rejects.toThrow(ConfigError);
    await expect(attempt).rejects.toThrow(/^K2_CONFIG_JSON: tables\.0\./);
    await expect(
      buildLambdaDeps(
        { clickhouse: false, postgres: false },
        { env: env({ K2_CONFIG_JSON: '{tables' }), secrets: fakeSecrets({}).client },
      ),
    ).rejects.toThrow(/K2_CONFIG_JSON is not JSON/);
  });

  it('builds once per container; a failed build is not kept', async () => {
    let outage = true;
    const secrets = fakeSecrets({ [PG_ARN]: { url: db.url } }, () =>
      outage
        ? Object.assign(new Error('slow down'), {
            name: 'ThrottlingException',
            $metadata: { httpStatusCode: 400 },
          })
        : undefined,
    );
    const deps = lambdaDeps({ clickhouse: false, postgres: true }, { env: env(), secrets: secrets.client });
    await expect(deps()).rejects.toThrow(UnavailableError);
    outage = false;
    const first = await deps();
    const second = await deps();
    expect(second).toBe(first);
    expect(secrets.calls).toHaveLength(2);
    await first.watermarks.list();
  });

  it('metrics are EMF lines and logs JSON lines, one object per line', async () => {
    const lines: string[] = [];
    const deps = await buildLambdaDeps(
      { clickhouse: false, postgres: false },
      {
        env: env({ K2_STAGE: 'prod', AWS_LAMBDA_FUNCTION_NAME: 'k2-offload-prod-publish-cycle' }),
        secrets: fakeSecrets({}).client,
        write: (text) => lines.push(...text.split('\n').filter(Boolean)),
        clock: () => new Date('2026-03-01T12:00:00Z'),
      },
    );
    deps.metrics([
      { timestamp: Date.parse('2026-03-01T12:00:00Z'), dimensions: { Table: 't1' }, values: { rows: 5 } },
      { timestamp: Date.parse('2026-03-01T12:00:00Z'), values: { cyclesStarted: 1 } },
    ]);
    deps.log({ event: 'reconciled', table: 't1' });
    expect(lines).toHaveLength(3);
    const [rows, started, log] = lines.map((l) => JSON.parse(l));
    expect(rows._aws.CloudWatchMetrics[0].Namespace).toBe('K2/Offload');
    expect(rows).toMatchObject({ Table: 't1', RowsOffloaded: 5 });
    expect(started).toMatchObject({ CyclesStarted: 1 });
    expect(log).toEqual({
      level: 'info',
      time: '2026-03-01T12:00:00.000Z',
      stage: 'prod',
      function: 'k2-offload-prod-publish-cycle',
      event: 'reconciled',
      table: 't1',
    });
  });
});

describe('a stage whose secrets still hold the deploy-time placeholder', () => {
  const env = {
    WAREHOUSE: 's3://k2-warehouse',
    AWS_REGION: 'eu-west-1',
    K2_POSTGRES_SECRET_ARN: PG_ARN,
    K2_CLICKHOUSE_SECRET_ARN: CH_ARN,
  };
  const placeholder = fakeSecrets({ [PG_ARN]: SECRET_PLACEHOLDER, [CH_ARN]: SECRET_PLACEHOLDER });

  it('builds, says which secret to fill, and the cycle plans nothing instead of failing', async () => {
    const deps = await buildLambdaDeps(
      { clickhouse: true, postgres: true, migrate: true },
      { env, secrets: placeholder.client, clock: () => new Date('2026-01-01T00:00:00Z'), write: () => {} },
    );
    expect(deps.notConfigured).toContain('not configured: put {"url": ...} in secret k2/clickhouse');
    expect(deps.notConfigured).toContain('in secret k2/postgres');
    expect(() => deps.watermarks.get('t')).toThrow(NotConfiguredError);
    const plan = await planCycleHandler(async () => deps)({});
    expect(plan).toMatchObject({ layers: [], skipped: [], more: false });
  });

  it('a secret that is filled but wrong is still an error that pages', async () => {
    const wrong = fakeSecrets({ [PG_ARN]: { url: 'mysql://x' }, [CH_ARN]: SECRET_PLACEHOLDER });
    await expect(
      buildLambdaDeps({ clickhouse: false, postgres: true }, { env, secrets: wrong.client, write: () => {} }),
    ).rejects.toBeInstanceOf(ConfigError);
  });
});
