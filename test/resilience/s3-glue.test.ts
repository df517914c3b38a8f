import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateDatabaseCommand, GetTableCommand, GlueClient } from '@aws-sdk/client-glue';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { icebergTableFunction } from '../../src/audit/iceberg-source.ts';
import { createGlueCatalog } from '../../src/iceberg/glue-catalog.ts';
import { S3ObjectStore } from '../../src/iceberg/s3-store.ts';
import type { PipelineDeps } from '../../src/pipeline/deps.ts';
import { crashAt, InjectedCrash } from '../../src/pipeline/faults.ts';
import { runCycle } from '../../src/pipeline/local-runner.ts';
import { MOTO_CREDENTIALS, type Moto, motoAvailability, skipMoto, startMoto } from '../support/moto.ts';
import { freshDatabase } from '../support/pg.ts';
import {
  CYCLE_MS,
  configWith,
  fakeClock,
  LEASE_SECONDS,
  MINUTE,
  openRig,
  pastStart,
  type Rig,
  tradeFeed,
} from './harness.ts';
import { verifyAll } from './verify.ts';

/**
 * The crash-and-repair protocol on the AWS side of the pipeline: the warehouse in S3, tables in the Glue
 * Data Catalog, ClickHouse writing the staged Parquet to S3 itself through s3() with the endpoint, and
 * chDB's icebergS3 reading the result back. The endpoint comes from the environment: LocalStack where
 * LOCALSTACK_ENDPOINT is set (see localstack/README.md), otherwise a private moto server.
 */
const moto = motoAvailability();

describe.skipIf(skipMoto(moto, 'resilience on S3 and Glue'))(
  'a crashed cycle on S3 and Glue, repaired',
  () => {
    const clock = fakeClock(pastStart(3));
    let server: Moto;
    let db: Awaited<ReturnType<typeof freshDatabase>>;
    let rig: Rig;
    let deps: PipelineDeps;
    let feed: ReturnType<typeof tradeFeed>;
    let glue: GlueClient;
    let database: string;
    const bucket = `k2-resilience-${randomBytes(4).toString('hex')}`;
    const s3 = () => ({ endpoint: server.endpoint, region: server.clientConfig.region, ...MOTO_CREDENTIALS });

    beforeAll(async () => {
      server = await startMoto();
      await new S3Client(server.clientConfig).send(new CreateBucketCommand({ Bucket: bucket }));
      glue = new GlueClient(server.clientConfig);
      // One Glue database per run, so a shared LocalStack keeps runs apart.
      database = bucket.replace(/-/g, '_');
      await glue.send(new CreateDatabaseCommand({ DatabaseInput: { Name: database } }));
      db = await freshDatabase();
      rig = await openRig({ dir: await mkdtemp(join(tmpdir(), 'k2-s3glue-')), databaseUrl: db.url, clock });
      deps = rig.deps({
        // Built from the endpoint as the CLI builds it (runtime/open.ts), not from a ready client.
        store: new S3ObjectStore({
          endpoint: server.endpoint,
          region: server.clientConfig.region,
          forcePathStyle: true,
          credentials: MOTO_CREDENTIALS,
        }),
        catalog: createGlueCatalog(glue, { databaseName: () => database }),
        warehouse: `s3://${bucket}/warehouse`,
        s3: s3(),
      });
      feed = tradeFeed(rig.clickhouse, clock, {
        from: clock.now().getTime() - 3 * 3_600_000,
        seed: 71,
        rowsPerHour: 1_500,
      });
      await feed({ lateFraction: 0.05 });
    }, 120_000);
    afterAll(async () => {
      await rig?.close();
      await db?.drop();
      await server?.stop();
      if (rig) await rm(rig.dir, { recursive: true, force: true });
    });

    it('dies after writing data files and manifests to S3; the next cycle leaves every key once, read by icebergS3', async () => {
      await runCycle(deps, {});
      clock.advance(2 * CYCLE_MS);
      await feed();
      const faults = crashAt('after-data-files', { table: 'silver_trades' });
      await expect(runCycle({ ...deps, faults }, {})).rejects.toBeInstanceOf(InjectedCrash);
      expect(faults.fired).toBe(1);

      clock.advance(LEASE_SECONDS * 1000 + MINUTE);
      await feed();
      const rerun = await runCycle(deps, {});
      expect(rerun.passes.flatMap((p) => p.tables).filter((t) => t.status === 'failed')).toEqual([]);
      const location = await deps.catalog.currentMetadataLocation({
        namespace: 'cold',
        name: 'silver_trades',
      });
      expect(location).toMatch(new RegExp(`^s3://${bucket}/warehouse/cold/silver_trades/metadata/`));
      const { problems, verdicts } = await verifyAll(deps, { s3: s3() });
      expect(problems).toEqual([]);
      for (const v of verdicts.filter((v) => v.table !== 'ohlcv_1d'))
        expect(v.icebergRows, v.table).toBeGreaterThan(0);
    });

    it('a column added in ClickHouse and the config on S3 and Glue: the Glue columns follow, icebergS3 reads old rows null and new rows filled', async () => {
      const table = 'bronze_trades_binance';
      await rig.clickhouse.command({
        query: `ALTER TABLE k2.${table} ADD COLUMN venue String DEFAULT concat('v-', symbol)`,
      });
      const config = configWith((t) =>
        t.name === table
          ? { columns: [...t.columns, { name: 'venue', type: 'String', required: false }] }
          : {},
      );
      clock.advance(CYCLE_MS);
      await feed();
      const result = await runCycle({ ...deps, config }, {});
      expect(result.passes.flatMap((p) => p.tables).filter((t) => t.status === 'failed')).toEqual([]);

      const glueTable = await glue.send(new GetTableCommand({ DatabaseName: database, Name: table }));
      expect(glueTable.Table?.StorageDescriptor?.Columns?.at(-1)).toMatchObject({
        Name: 'venue',
        Type: 'string',
        Parameters: { 'iceberg.field.id': '11', 'iceberg.field.optional': 'true' },
      });
      const location = (await deps.catalog.currentMetadataLocation({
        namespace: 'cold',
        name: table,
      })) as string;
      const read = await rig.clickhouse.query({
        query: `SELECT venue IS NULL AS old, toString(count()) AS rows, toString(countIf(venue = concat('v-', symbol))) AS filled
          FROM ${icebergTableFunction(location, s3())} GROUP BY old ORDER BY old`,
        format: 'JSONEachRow',
      });
      const split = (await read.json()) as Array<{ old: number; rows: string; filled: string }>;
      expect(split.map((r) => r.old)).toEqual([0, 1]);
      expect(split[0]?.filled).toBe(split[0]?.rows);
      expect(split[1]?.filled).toBe('0');
      const { problems } = await verifyAll(deps, { s3: s3() });
      expect(problems).toEqual([]);
    });
  },
);
