import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateDatabaseCommand, GlueClient } from '@aws-sdk/client-glue';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import type { GetSecretValueCommand } from '@aws-sdk/client-secrets-manager';
import type { ClickHouseClient } from '@clickhouse/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildLambdaDeps } from '../../functions/shared/deps.ts';
import type { SecretsClientLike } from '../../functions/shared/secrets.ts';
import { openClickHouse, queryRows } from '../../src/clickhouse/client.ts';
import { createDemoSchema } from '../../src/clickhouse/demo.ts';
import { generateTrades } from '../../src/clickhouse/demo-trades.ts';
import { stringLiteral } from '../../src/clickhouse/sql.ts';
import { tableByName } from '../../src/config/load.ts';
import {
  buildStateMachineDefinition,
  placeholderFunctionArns,
  STATE_NAMES,
} from '../../src/orchestration/asl.ts';
import type { PipelineDeps } from '../../src/pipeline/deps.ts';
import { MOTO_CREDENTIALS, type Moto, motoAvailability, skipMoto, startMoto } from '../support/moto.ts';
import { freshDatabase } from '../support/pg.ts';
import { execute } from './support.ts';

const moto = motoAvailability();
const PG_ARN = 'arn:aws:secretsmanager:us-east-1:123456789012:secret:k2/postgres-AbCdEf';
const CH_ARN = 'arn:aws:secretsmanager:us-east-1:123456789012:secret:k2/clickhouse-AbCdEf';
const TABLES = ['bronze_trades_binance', 'bronze_trades_kraken'];
const definition = buildStateMachineDefinition({
  functions: placeholderFunctionArns(),
  maxConcurrency: 4,
  emr: {
    applicationId: 'app',
    executionRoleArn: 'arn:aws:iam::123456789012:role/emr',
    entryPoint: 's3://x/job.py',
    sparkSubmitParameters: '',
  },
});

/**
 * The functions' own wiring (functions/shared/deps.ts) on AWS APIs: S3 and Glue emulated by moto,
 * Postgres real, Secrets Manager at its SDK edge. Only ClickHouse is swapped: the in-process engine
 * stands in for the remote server and writes the staged Parquet to S3 itself, as a server would.
 */
describe.skipIf(skipMoto(moto, 'functions on AWS APIs'))(
  'the functions wired for AWS (moto S3 and Glue)',
  () => {
    let server: Moto;
    let db: Awaited<ReturnType<typeof freshDatabase>>;
    let dir: string;
    let chdb: ClickHouseClient;
    let deps: PipelineDeps;
    beforeAll(async () => {
      server = await startMoto();
      // What the Lambda runtime puts in the environment for the role; the SDK clients read it.
      Object.assign(process.env, {
        AWS_ACCESS_KEY_ID: MOTO_CREDENTIALS.accessKeyId,
        AWS_SECRET_ACCESS_KEY: MOTO_CREDENTIALS.secretAccessKey,
      });
      await new S3Client(server.clientConfig).send(new CreateBucketCommand({ Bucket: 'k2-warehouse' }));
      const glue = new GlueClient(server.clientConfig);
      await glue.send(new CreateDatabaseCommand({ DatabaseInput: { Name: 'cold' } }));
      db = await freshDatabase();
      dir = await mkdtemp(join(tmpdir(), 'k2-fn-aws-'));
      chdb = openClickHouse({ dataDir: join(dir, 'chdb') });
      await createDemoSchema(chdb);
      await generateTrades(chdb, { rows: 6_000, spanHours: 2, end: new Date(Date.now() - 60_000), seed: 5 });
      const secrets: SecretsClientLike = {
        send: (async (command: GetSecretValueCommand) => ({
          SecretString: JSON.stringify(
            command.input.SecretId === PG_ARN ? { url: db.url } : { host: 'ch.internal' },
          ),
        })) as SecretsClientLike['send'],
      };
      const built = await buildLambdaDeps(
        { clickhouse: true, postgres: true, migrate: true },
        {
          env: {
            ...process.env,
            WAREHOUSE: 's3://k2-warehouse',
            AWS_REGION: server.clientConfig.region,
            S3_ENDPOINT: server.endpoint,
            K2_POSTGRES_SECRET_ARN: PG_ARN,
            K2_CLICKHOUSE_SECRET_ARN: CH_ARN,
          },
          secrets,
          glue,
          write: () => {},
        },
      );
      expect(built.catalog.kind).toBe('glue');
      deps = {
        ...built,
        config: {
          tables: built.config.tables.map((t) =>
            t.name === 'bronze_trades_kraken' ? { ...t, committer: 'emr' as const } : t,
          ),
        },
        clickhouse: chdb,
      };
    }, 120_000);
    afterAll(async () => {
      await chdb?.close();
      await db?.drop();
      await server?.stop();
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    it('a cycle stages to S3, commits to Iceberg tables registered in Glue, and advances the watermarks', async () => {
      const run = await execute(definition, deps, { tables: TABLES });
      expect(run.error).toBeUndefined();
      expect(run.calls).toContain(STATE_NAMES.commitBatchEmr);
      for (const name of TABLES) {
        const table = tableByName(deps.config, name);
        const w = await deps.watermarks.get(name);
        expect({ status: w?.status, error: w?.lastError }, name).toEqual({ status: 'ok', error: null });
        const location = await deps.catalog.currentMetadataLocation(table.target);
        expect(location, name).toMatch(
          new RegExp(`^s3://k2-warehouse/cold/${name}/metadata/.*\\.metadata\\.json$`),
        );
        // chDB reads the Iceberg table back from S3, by the metadata file Glue points at.
        const root = `${server.endpoint}/k2-warehouse/cold/${name}`;
        const file = (location as string).slice((location as string).indexOf('/metadata/') + 1);
        const [iceberg] = await queryRows<{ n: string }>(
          chdb,
          `SELECT toString(count()) AS n FROM icebergS3(${stringLiteral(root)}, 'testing', 'testing',
           SETTINGS iceberg_metadata_file_path = ${stringLiteral(file)})`,
        );
        const [hot] = await queryRows<{ n: string }>(
          chdb,
          `SELECT toString(count()) AS n FROM k2.${name}
         WHERE ingestion_timestamp < parseDateTime64BestEffort(${stringLiteral(w?.cursor as string)}, 6, 'UTC')`,
        );
        expect(Number(iceberg?.n), name).toBeGreaterThan(0);
        expect(Number(iceberg?.n), name).toBe(Number(hot?.n));
      }
    });
  },
);
