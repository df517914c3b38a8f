import { Readable } from 'node:stream';
import { CreateBucketCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queryRows } from '../../src/clickhouse/client.ts';
import { createDemoSchema } from '../../src/clickhouse/demo.ts';
import { generateTrades } from '../../src/clickhouse/demo-trades.ts';
import { stringLiteral } from '../../src/clickhouse/sql.ts';
import { defaultConfig, tableByName } from '../../src/config/load.ts';
import { S3ObjectStore } from '../../src/iceberg/s3-store.ts';
import { stageBatch } from '../../src/stage/stage.ts';
import { s3HttpUrl } from '../../src/stage/targets.ts';
import { batchSpec, openTestClickHouse } from '../stage/support.ts';
import { TEST_NOW } from '../support/clock.ts';
import { MOTO_CREDENTIALS, type Moto, motoAvailability, skipMoto, startMoto } from '../support/moto.ts';

const moto = motoAvailability();
const HOUR = 3_600_000;
const end = new Date(TEST_NOW.getTime() - HOUR);
const table = tableByName(defaultConfig(), 'bronze_trades_coinbase');

describe.skipIf(skipMoto(moto, 'staging to S3'))('staging to S3 (moto)', () => {
  let server: Moto;
  let s3: S3Client;
  let ch: Awaited<ReturnType<typeof openTestClickHouse>>;

  beforeAll(async () => {
    server = await startMoto();
    s3 = new S3Client(server.clientConfig);
    await s3.send(new CreateBucketCommand({ Bucket: 'k2-staging' }));
    ch = await openTestClickHouse('stage-s3');
    await createDemoSchema(ch.client);
    await generateTrades(ch.client, { rows: 5000, spanHours: 2, end, seed: 2 });
    // ClickHouse's own identity for S3, created once on the server by the operator (option 2).
    await ch.client.command({
      query: `CREATE NAMED COLLECTION k2_staging AS url = '${server.endpoint}/', access_key_id = '${MOTO_CREDENTIALS.accessKeyId}', secret_access_key = '${MOTO_CREDENTIALS.secretAccessKey}'`,
    });
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

  /** Every statement this test sends to ClickHouse, to show that none carries a secret. */
  const sent: string[] = [];
  const recording = () => {
    const client = ch.client;
    for (const method of ['query', 'command', 'exec'] as const) {
      const original = client[method].bind(client) as (p: { query: string }) => Promise<unknown>;
      Object.assign(client, {
        [method]: (params: { query: string }) => {
          sent.push(params.query);
          return original(params);
        },
      });
    }
  };
  const secrets = [MOTO_CREDENTIALS.accessKeyId, MOTO_CREDENTIALS.secretAccessKey];

  it('streams through this process to S3 by default, create-only, with no credential in any SQL', async () => {
    recording();
    const batch = { ...spec(), stagingPrefix: `s3://k2-staging/streamed/${table.name}/t1-a/` };
    const objects = new S3ObjectStore({ ...server.clientConfig });
    const result = await stageBatch(table, batch, {
      client: ch.client,
      objects,
      s3: { endpoint: server.endpoint },
    });
    expect(result.rows).toBe(await windowCount());
    expect(await listed(`streamed/${table.name}/t1-a/`)).toEqual(
      result.files.map((f) => ({ key: f.uri.replace('s3://k2-staging/', ''), size: f.bytes })),
    );
    const [back] = await queryRows<{ n: number }>(
      ch.client,
      `SELECT count() AS n FROM s3(k2_staging, url = ${stringLiteral(s3HttpUrl('k2-staging', `streamed/${table.name}/t1-a/*.parquet`, { endpoint: server.endpoint }))}, format = 'Parquet')`,
    );
    expect(Number(back?.n)).toBe(result.rows);
    // A second writer of the same attempt folder is refused; the object it would replace is untouched.
    await expect(stageBatch(table, batch, { client: ch.client, objects })).rejects.toThrow(/already exists/);
    expect((await listed(`streamed/${table.name}/t1-a/`)).map((o) => o.size)).toEqual(
      result.files.map((f) => f.bytes),
    );
    expect(sent.length).toBeGreaterThan(0);
    for (const query of sent) for (const secret of secrets) expect(query).not.toContain(`'${secret}'`);
  });

  it('lets ClickHouse write to S3 itself only as a named collection the operator created: SQL names it, no secret', async () => {
    sent.length = 0;
    const batch = { ...spec(), stagingPrefix: `s3://k2-staging/by-clickhouse/${table.name}/t1-b/` };
    const access = { endpoint: server.endpoint, namedCollection: 'k2_staging' };
    const result = await stageBatch(table, batch, { client: ch.client, writer: 'clickhouse', s3: access });
    expect(result.rows).toBe(await windowCount());
    expect((await listed(`by-clickhouse/${table.name}/t1-b/`)).map((o) => o.size)).toEqual(
      result.files.map((f) => f.bytes),
    );
    expect(sent.some((q) => q.includes('INSERT INTO FUNCTION s3(`k2_staging`'))).toBe(true);
    for (const query of sent) for (const secret of secrets) expect(query).not.toContain(`'${secret}'`);
    await expect(
      stageBatch(table, batch, { client: ch.client, writer: 'clickhouse', s3: access }),
    ).rejects.toThrow(/already exists/);
  });

  it('holds about two parts of a stream many parts long, not the stream, and never replaces an object', async () => {
    const partSize = 5 * 1024 * 1024;
    const objects = new S3ObjectStore({
      ...server.clientConfig,
      partSizeBytes: partSize,
      uploadQueueSize: 1,
    });
    let produced = 0;
    let uploaded = 0;
    let held = 0;
    objects.client.middlewareStack.add(
      (next, context) => async (args) => {
        const out = await next(args);
        const body = (args.input as { Body?: Uint8Array }).Body;
        if (context.commandName === 'UploadPartCommand' && body) uploaded += body.byteLength;
        return out;
      },
      { step: 'initialize' },
    );
    // A source that makes each 64 KiB chunk only when asked, as a ClickHouse server's HTTP response does
    // (chDB hands over its whole result at once, so it cannot show this).
    const total = 48 * 1024 * 1024;
    const source = () =>
      Readable.from(
        (function* () {
          for (let i = 0; i < total / 65_536; i++) {
            produced += 65_536;
            held = Math.max(held, produced - uploaded);
            yield Buffer.alloc(65_536, i % 251);
          }
        })(),
      );
    const uri = 's3://k2-staging/bounded/part-00000.parquet';
    expect(await objects.putStream(uri, source(), { ifNoneMatch: true })).toBe(true);
    expect((await objects.head(uri))?.size).toBe(total);
    expect(uploaded).toBeGreaterThanOrEqual(total - partSize);
    // The part being filled and the one in flight, plus stream buffers: not the file.
    expect(held).toBeLessThan(3 * partSize);
    // If-None-Match on the multipart completion: an existing object is never replaced.
    const small = new Uint8Array(1024);
    expect(await objects.putStream(uri, Readable.from([small]), { ifNoneMatch: true })).toBe(false);
    expect(await objects.putStream(uri, source(), { ifNoneMatch: true })).toBe(false);
    expect((await objects.head(uri))?.size).toBe(total);
  });
});
