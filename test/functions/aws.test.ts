import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateDatabaseCommand, GlueClient } from '@aws-sdk/client-glue';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { CreateSecretCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { ClickHouseClient } from '@clickhouse/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildLambdaDeps } from '../../functions/shared/deps.ts';
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
import { crashAt } from '../../src/pipeline/faults.ts';
import { FUNCTION_ACCESS, FUNCTION_NAMES } from '../../src/runtime/access.ts';
import { checkIamContract, MACHINE } from '../infra/iam/check.ts';
import { CallRecorder } from '../infra/iam/record.ts';
import { TEST_NOW } from '../support/clock.ts';
import { MOTO_CREDENTIALS, type Moto, motoAvailability, skipMoto, startMoto } from '../support/moto.ts';
import { freshDatabase } from '../support/pg.ts';
import { asLambda, execute, handlersOver, type Principal } from './support.ts';

const moto = motoAvailability();
const TABLES = ['bronze_trades_binance', 'bronze_trades_kraken', 'bronze_trades_coinbase'];
const MIN = 60_000;
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
 * The functions' own wiring (functions/shared/deps.ts) on AWS APIs: S3, Glue and Secrets Manager emulated
 * by moto, Postgres real. Each function gets its own deps, built from its declared access, and every AWS
 * SDK call it makes is recorded; the IAM contract then checks each call against that function's role in
 * the synthesized template. Only ClickHouse is swapped: the in-process engine stands in for the remote
 * server and writes the staged Parquet to S3 itself, as a server would.
 */
describe.skipIf(skipMoto(moto, 'functions on AWS APIs'))(
  'the functions wired for AWS (moto S3, Glue and Secrets Manager)',
  () => {
    let server: Moto;
    let db: Awaited<ReturnType<typeof freshDatabase>>;
    let dir: string;
    let chdb: ClickHouseClient;
    const recorder = new CallRecorder();
    const secretArns = { clickhouse: '', postgres: '' };
    const built = new Map<Principal, PipelineDeps>();
    const depsOf = (fn: Principal) => built.get(fn) as PipelineDeps;
    // The functions' clock and ClickHouse's stand still, and move only when a test moves them.
    let now = TEST_NOW.getTime();
    const clock = () => new Date(now);
    beforeAll(async () => {
      server = await startMoto();
      // What the Lambda runtime puts in the environment for the role; the SDK clients read it.
      Object.assign(process.env, {
        AWS_ACCESS_KEY_ID: MOTO_CREDENTIALS.accessKeyId,
        AWS_SECRET_ACCESS_KEY: MOTO_CREDENTIALS.secretAccessKey,
        // Every client the functions build (Glue, Secrets Manager) goes to the emulator.
        AWS_ENDPOINT_URL: server.endpoint,
      });
      await new S3Client(server.clientConfig).send(new CreateBucketCommand({ Bucket: 'k2-warehouse' }));
      // The stack creates the database; the functions may not.
      await new GlueClient(server.clientConfig).send(
        new CreateDatabaseCommand({ DatabaseInput: { Name: 'cold' } }),
      );
      db = await freshDatabase();
      const sm = new SecretsManagerClient(server.clientConfig);
      for (const [what, value] of [
        ['clickhouse', { url: 'https://default:pw@ch.internal:8443' }],
        ['postgres', { url: db.url }],
      ] as const) {
        const created = await sm.send(
          new CreateSecretCommand({ Name: `k2-offload-test/${what}`, SecretString: JSON.stringify(value) }),
        );
        secretArns[what] = created.ARN as string;
      }
      dir = await mkdtemp(join(tmpdir(), 'k2-fn-aws-'));
      chdb = openClickHouse({ dataDir: join(dir, 'chdb') });
      await createDemoSchema(chdb);
      await generateTrades(chdb, { rows: 6_000, spanHours: 2, end: new Date(now - MIN), seed: 5 });
      const env = {
        ...process.env,
        WAREHOUSE: 's3://k2-warehouse',
        AWS_REGION: server.clientConfig.region,
        S3_ENDPOINT: server.endpoint,
        K2_POSTGRES_SECRET_ARN: secretArns.postgres,
        K2_CLICKHOUSE_SECRET_ARN: secretArns.clickhouse,
      };
      // The Spark job's stand-in commits with the in-Lambda committer's access.
      // Step Functions' own S3 read (LoadTablePlan) is recorded against the state machine's role.
      for (const fn of [...FUNCTION_NAMES, 'emr-job', MACHINE] as const) {
        // The state machine reads plan objects only: no secret, no catalog.
        const access =
          fn === MACHINE
            ? { ...FUNCTION_ACCESS['commit-watermark'], postgres: false, glue: 'none' as const }
            : FUNCTION_ACCESS[fn === 'emr-job' ? 'commit-batch' : fn];
        const deps = await buildLambdaDeps(access, {
          env,
          write: () => {},
          onClient: recorder.hook(fn),
          clock,
        });
        built.set(fn, {
          ...deps,
          sourceClock: async () => clock(),
          config: {
            tables: deps.config.tables.map((t) =>
              t.name === 'bronze_trades_kraken' ? { ...t, committer: 'emr' as const } : t,
            ),
          },
          ...(access.clickhouse ? { clickhouse: chdb } : {}),
        });
      }
      expect(depsOf('commit-batch').catalog.kind).toBe('glue');
    }, 120_000);
    afterAll(async () => {
      await chdb?.close();
      await db?.drop();
      await server?.stop();
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    const executions: { calls: string[] }[] = [];

    it('a cycle creates the tables, stages to S3, commits to Iceberg tables registered in Glue, and advances the watermarks', async () => {
      const run = await execute(definition, depsOf, { tables: TABLES });
      executions.push(run);
      expect(run.error).toBeUndefined();
      expect(run.calls).toContain(STATE_NAMES.commitBatchEmr);
      expect(run.calls).toContain(STATE_NAMES.commitBatchLambda);
      for (const name of TABLES) {
        const table = tableByName(depsOf('health').config, name);
        const w = await depsOf('health').watermarks.get(name);
        expect({ status: w?.status, error: w?.lastError }, name).toEqual({ status: 'ok', error: null });
        const location = await depsOf('health').catalog.currentMetadataLocation(table.target);
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

    it('a failed table is recorded (failure count, error) and the health check reads every table', async () => {
      // Ten minutes on: trades that arrived since the first cycle's bound are past the new one.
      now += 10 * MIN;
      await generateTrades(chdb, { rows: 500, spanHours: 0.1, end: new Date(now - 6 * MIN), seed: 6 });
      const stage = depsOf('stage-batch');
      built.set('stage-batch', {
        ...stage,
        faults: crashAt('after-stage', { table: 'bronze_trades_coinbase', times: 100 }),
      });
      const run = await execute(definition, depsOf, { tables: TABLES });
      built.set('stage-batch', stage);
      executions.push(run);
      expect(run.calls).toContain(STATE_NAMES.recordFailure);
      const w = await depsOf('health').watermarks.get('bronze_trades_coinbase');
      expect(w?.consecutiveFailures).toBeGreaterThanOrEqual(1);

      const report = (await asLambda(handlersOver(depsOf).health)({ source: 'schedule' })) as {
        tables: { table: string }[];
      };
      expect(report.tables.map((t) => t.table).sort()).toEqual(
        depsOf('health')
          .config.tables.map((t) => t.name)
          .sort(),
      );
    });

    describe('the IAM contract: every AWS call a function made is allowed by its role in the template', () => {
      it('holds for each function role and the state machine role, and each needed grant is needed', () => {
        checkIamContract({
          recorder,
          executedStates: executions.flatMap((e) => e.calls),
          secretArns,
          bucket: 'k2-warehouse',
          print: (text) => process.stdout.write(text),
        });
        // Synthesizing the stack (esbuild, cdk-nag) takes most of this on 2 busy cores.
      }, 300_000);
    });
  },
);
