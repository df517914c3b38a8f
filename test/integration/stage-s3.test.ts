import { CreateBucketCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queryRows } from '../../src/clickhouse/client.ts';
import { createDemoSchema } from '../../src/clickhouse/demo.ts';
import { generateTrades } from '../../src/clickhouse/demo-trades.ts';
import { stringLiteral } from '../../src/clickhouse/sql.ts';
import { defaultConfig, tableByName } from '../../src/config/load.ts';
import { S3ObjectStore } from '../../src/iceberg/s3-store.ts';
import { stageBatch } from '../../src/stage/stage.ts';
import { type S3Access, s3HttpUrl } from '../../src/stage/targets.ts';
import { batchSpec, openTestClickHouse } from '../stage/support.ts';
import { MOTO_CREDENTIALS, type Moto, motoAvailability, skipMoto, startMoto } from '../support/moto.ts';

const moto = motoAvailability();
const HOUR = 3_600_000;
const end = new Date(Math.floor(Date.now() / HOUR) * HOUR - HOUR);
const table = tableByName(defaultConfig(), 'bronze_trades_coinbase');

describe.skipIf(skipMoto(moto, 'staging to S3'))('staging to S3 (moto)', () => {
  let server: Moto;
  let s3: S3Client;
  let access: S3Access;
  let ch: Awaited<ReturnType<typeof openTestClickHouse>>;

  beforeAll(async () => {
    server = await startMoto();
    s3 = new S3Client(server.clientConfig);
    await s3.send(new CreateBucketCommand({ Bucket: 'k2-staging' }));
    access = { endpoint: server.endpoint, ...MOTO_CREDENTIALS };
    ch = await openTestClickHouse('stage-s3');
    await createDemoSchema(ch.client);
    await generateTrades(ch.client, { rows: 5000, spanHours: 2, end, seed: 2 });
  });
  afterAll(async () => {
    await ch?.close();
    s3?.destroy();
    await server?.stop();
  });

  const spec = () => {
    const local = batchSpec(
      table,
      new Date(end.getTime() - HOUR).toISOString(),
      end.toISOString(),
      '/unused',
    );
    return { ...local, stagingPrefix: `s3://k2-staging/staging/${table.name}/${local.batchId}/` };
  };
  const listed = async (prefix: string) =>
    ((await s3.send(new ListObjectsV2Command({ Bucket: 'k2-staging', Prefix: prefix }))).Contents ?? []).map(
      (o) => ({ key: o.Key, size: o.Size }),
    );
  const windowCount = async () => {
    const [row] = await queryRows<{ n: number }>(
      ch.client,
      `SELECT count() AS n FROM k2.bronze_trades_coinbase WHERE ingestion_timestamp >= toDateTime64('${new Date(end.getTime() - HOUR).toISOString().slice(0, 19).replace('T', ' ')}', 6, 'UTC') AND ingestion_timestamp < toDateTime64('${end.toISOString().slice(0, 19).replace('T', ' ')}', 6, 'UTC')`,
    );
    return Number(row?.n);
  };

  it('has ClickHouse write the files to S3 itself, at the deterministic keys', async () => {
    const batch = spec();
    const result = await stageBatch(table, batch, { client: ch.client, s3: access });
    expect(result.rows).toBe(await windowCount());
    const keys = result.files.map((f) => f.uri.replace('s3://k2-staging/', ''));
    expect(await listed(batch.stagingPrefix.replace('s3://k2-staging/', ''))).toEqual(
      result.files.map((f, i) => ({ key: keys[i], size: f.bytes })),
    );
    const url = s3HttpUrl('k2-staging', `${keys[0]}`, access);
    const [back] = await queryRows<{ n: number }>(
      ch.client,
      `SELECT count() AS n FROM s3(${stringLiteral(url)}, 'testing', 'testing', 'Parquet')`,
    );
    expect(Number(back?.n)).toBe(result.rows);
  });

  it('removes an earlier attempt’s leftover part files from the batch prefix when given the object store', async () => {
    const batch = { ...spec(), stagingPrefix: `s3://k2-staging/retried/${table.name}/` };
    const objects = new S3ObjectStore({ ...server.clientConfig });
    await objects.put(`${batch.stagingPrefix}part-00042.parquet`, new TextEncoder().encode('older attempt'));
    const result = await stageBatch(table, batch, { client: ch.client, s3: access, objects });
    expect((await listed(`retried/${table.name}/`)).map((o) => `s3://k2-staging/${o.key}`)).toEqual(
      result.files.map((f) => f.uri),
    );
  });

  it('streams through this process to S3 with the stream writer and an object store', async () => {
    const batch = { ...spec(), stagingPrefix: `s3://k2-staging/streamed/${table.name}/` };
    const objects = new S3ObjectStore({ ...server.clientConfig });
    const result = await stageBatch(table, batch, { client: ch.client, writer: 'stream', objects });
    expect(result.rows).toBe(await windowCount());
    expect((await listed(`streamed/${table.name}/`)).map((o) => o.size)).toEqual(
      result.files.map((f) => f.bytes),
    );
  });
});
