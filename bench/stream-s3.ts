/**
 * The AWS staging path, measured locally: the bronze backlog staged into S3 (moto) by the stream writer
 * (ClickHouse's Parquet output through this process into multipart uploads, no credential in SQL)
 * against ClickHouse writing the same rows to the same S3 by itself (s3(), default settings, zstd).
 * Each side runs in a child process of its own, so each peak RSS is that side's alone.
 *
 *   tsx bench/stream-s3.ts --child stream|export --dir <chdb parent dir> --endpoint <moto> --windows <json>
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { CreateBucketCommand } from '@aws-sdk/client-s3';
import { openClickHouse } from '../src/clickhouse/client.ts';
import { defaultConfig, tableByName } from '../src/config/load.ts';
import { S3ObjectStore } from '../src/iceberg/s3-store.ts';
import { makeBatch } from '../src/plan/batch.ts';
import { stageBatch } from '../src/stage/stage.ts';
import { s3HttpUrl } from '../src/stage/targets.ts';
import { MOTO_CREDENTIALS, startMoto } from '../test/support/moto.ts';
import { SHIPPED_ALLOCATOR } from './sides.ts';

export type Window = { table: string; start: string; end: string };
/** `openRssMb`: the child's peak after opening chDB and reading the window's row count, before writing. */
export type SideResult = { rows: number; ms: number; rssMb: number; openRssMb: number };

const BUCKET = 'k2-bench';
const rssMb = () => Math.round(process.resourceUsage().maxRSS / 1024);

async function child(mode: string, dir: string, endpoint: string, windows: Window[]): Promise<SideResult> {
  const clickhouse = openClickHouse({ dataDir: join(dir, 'chdb') });
  const objects = new S3ObjectStore({
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: MOTO_CREDENTIALS,
  });
  const counted = await clickhouse.query({
    query: `SELECT count() AS n FROM k2.${tableByName(defaultConfig(), windows[0]?.table as string).source.table}`,
    format: 'JSONEachRow',
  });
  await counted.json();
  const openRssMb = rssMb();
  let rows = 0;
  const t = Date.now();
  try {
    for (const w of windows) {
      const table = tableByName(defaultConfig(), w.table);
      const batch = makeBatch(table.name, w.start, w.end);
      const prefix = `s3://${BUCKET}/${mode}/${table.name}/t1-bench/`;
      if (mode === 'stream') {
        const staged = await stageBatch(
          table,
          {
            cycleId: 'bench',
            table: table.name,
            layer: table.layer,
            batchId: batch.batchId,
            windowStart: batch.windowStart,
            windowEnd: batch.windowEnd,
            leaseToken: '1',
            committer: 'lambda',
            target: table.target,
            stagingPrefix: prefix,
            lastOfTable: true,
          },
          { client: clickhouse, objects, s3: { endpoint } },
        );
        rows += staged.rows;
      } else {
        // ClickHouse's own export: its default settings, only the compression set to ours. The bench
        // creates the collection itself; an operator would create it once on the server.
        await clickhouse.command({
          query: `CREATE NAMED COLLECTION IF NOT EXISTS k2_bench AS url = '${endpoint}/', access_key_id = '${MOTO_CREDENTIALS.accessKeyId}', secret_access_key = '${MOTO_CREDENTIALS.secretAccessKey}'`,
        });
        const url = s3HttpUrl(BUCKET, `${prefix.slice(`s3://${BUCKET}/`.length)}all.parquet`, { endpoint });
        const where = `ingestion_timestamp >= parseDateTime64BestEffort('${w.start}', 6, 'UTC') AND ingestion_timestamp < parseDateTime64BestEffort('${w.end}', 6, 'UTC')`;
        await clickhouse.command({
          query: `INSERT INTO FUNCTION s3(k2_bench, url = '${url}', format = 'Parquet')
            SELECT * FROM k2.${table.source.table} WHERE ${where}
            SETTINGS output_format_parquet_compression_method = 'zstd'`,
        });
        const result = await clickhouse.query({
          query: `SELECT count() AS n FROM k2.${table.source.table} WHERE ${where}`,
          format: 'JSONEachRow',
        });
        rows += Number(((await result.json()) as { n: string }[])[0]?.n ?? 0);
      }
    }
    return { rows, ms: Date.now() - t, rssMb: rssMb(), openRssMb };
  } finally {
    await clickhouse.close();
    objects.client.destroy();
  }
}

function runChild(mode: 'stream' | 'export', dir: string, endpoint: string, windows: Window[]) {
  return new Promise<SideResult>((ok, fail) => {
    const args = [
      '--child',
      mode,
      '--dir',
      dir,
      '--endpoint',
      endpoint,
      '--windows',
      JSON.stringify(windows),
    ];
    const p = spawn(process.execPath, [...process.execArgv, new URL(import.meta.url).pathname, ...args], {
      stdio: ['ignore', 'pipe', 'inherit'],
      // ClickHouse's export with the engine's allocator as it ships; ours as the CLI runs.
      env: mode === 'export' ? { ...process.env, ...SHIPPED_ALLOCATOR } : process.env,
    });
    let out = '';
    p.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
    });
    p.on('exit', (code) => {
      const line = out.trim().split('\n').pop() ?? '';
      if (code === 0) ok(JSON.parse(line) as SideResult);
      else fail(new Error(`${mode} child exited with ${code}: ${out.slice(-2000)}`));
    });
  });
}

/**
 * Both sides against one moto server; ClickHouse's data dir must not be open in the calling process
 * (chDB allows one process per data dir). The export runs first, so moto's own warm-up favours us not.
 */
export async function benchStreamToS3(dir: string, windows: Window[]) {
  const moto = await startMoto();
  try {
    const objects = new S3ObjectStore(moto.clientConfig);
    await objects.client.send(new CreateBucketCommand({ Bucket: BUCKET }));
    objects.client.destroy();
    const theirs = await runChild('export', dir, moto.endpoint, windows);
    const ours = await runChild('stream', dir, moto.endpoint, windows);
    return { ours, theirs };
  } finally {
    await moto.stop();
  }
}

const { values } = parseArgs({
  options: {
    child: { type: 'string' },
    dir: { type: 'string' },
    endpoint: { type: 'string' },
    windows: { type: 'string' },
  },
  strict: false,
});
if (values.child)
  child(
    values.child as string,
    values.dir as string,
    values.endpoint as string,
    JSON.parse(values.windows as string) as Window[],
  ).then(
    (result) => console.log(JSON.stringify(result)),
    (error) => {
      console.error(error);
      process.exit(1);
    },
  );
