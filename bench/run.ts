/**
 * Benchmarks (QUALITY.md): end-to-end offload rows/s on bronze trades against ClickHouse's own Parquet
 * export of the same rows in the same run, their ratio, peak RSS, a normal 10-table cycle's wall time,
 * planning / watermark-commit time per table, and the AWS staging path (streamed to S3 through the
 * process) against ClickHouse's own export to the same S3. Prints ratios and writes bench/results.md.
 *
 *   npm run bench                      # the targets' scenario: a 10M-row backlog (about 2 minutes)
 *   npm run bench -- --rows 2000000    # a quicker run
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { openClickHouse, queryRows } from '../src/clickhouse/client.ts';
import { createDemoSchema } from '../src/clickhouse/demo.ts';
import { generateTrades } from '../src/clickhouse/demo-trades.ts';
import { defaultConfig } from '../src/config/load.ts';
import { fileUri, LocalObjectStore } from '../src/iceberg/local-store.ts';
import { createPostgresCatalog } from '../src/iceberg/postgres-catalog.ts';
import type { PipelineDeps } from '../src/pipeline/deps.ts';
import { NO_FAULTS } from '../src/pipeline/faults.ts';
import { runCycle } from '../src/pipeline/local-runner.ts';
import { planCycle } from '../src/pipeline/plan-cycle.ts';
import { embeddedDataDirs, startEmbeddedPostgres } from '../src/postgres/embedded.ts';
import { createPostgresWatermarkStore } from '../src/watermark/store.ts';
import { benchCliStartup } from './cli-startup.ts';
import { benchStreamToS3 } from './stream-s3.ts';

const { values } = parseArgs({
  options: {
    rows: { type: 'string', default: '10000000' },
    out: { type: 'string', default: 'bench/results.md' },
    seed: { type: 'string' },
  },
});
const backlogRows = Number(values.rows);
const outPath = resolve(values.out as string);
const BRONZE = ['bronze_trades_binance', 'bronze_trades_kraken', 'bronze_trades_coinbase'];
const rssMb = () => Math.round(process.resourceUsage().maxRSS / 1024);
const seconds = (ms: number) => (ms / 1000).toFixed(2);

/**
 * Seeding runs in a child process so that the peak RSS measured by the parent is the offload's own, not
 * the data generator's (chDB lives in the process that opens it).
 */
async function seed(dir: string, rows: number, end: string) {
  const clickhouse = openClickHouse({ dataDir: join(dir, 'chdb') });
  await createDemoSchema(clickhouse);
  await generateTrades(clickhouse, { rows, spanHours: 2, end, lateFraction: 0.01, seed: 11 });
  await clickhouse.close();
}

function runSeedChild(dir: string, rows: number, end: string): Promise<void> {
  return new Promise((ok, fail) => {
    const child = spawn(
      process.execPath,
      [...process.execArgv, process.argv[1] as string, '--seed', dir, '--rows', String(rows), '--out', end],
      {
        stdio: 'inherit',
      },
    );
    child.on('exit', (code) => (code === 0 ? ok() : fail(new Error(`seeding exited with ${code}`))));
  });
}

async function main() {
  const dir = await mkdtemp(join(tmpdir(), 'k2-bench-'));
  process.chdir(dir); // chDB's file() and icebergLocal() reach only below the working directory
  const external = process.env.DATABASE_URL ?? process.env.PG_URL;
  const embedded = external ? undefined : await startEmbeddedPostgres(join(dir, 'pg'));
  const admin = new pg.Client({ connectionString: external ?? embedded?.url });
  await admin.connect();
  const dbName = `k2_bench_${process.pid}`;
  await admin.query(`CREATE DATABASE ${dbName}`);
  const url = new URL((external ?? embedded?.url) as string);
  url.pathname = `/${dbName}`;
  const pool = new pg.Pool({ connectionString: url.toString(), max: 10 });
  const backlogEnd = new Date(Date.now() - 10 * 60_000);
  let t = Date.now();
  await runSeedChild(dir, backlogRows, backlogEnd.toISOString());
  const seedMs = Date.now() - t;
  const clickhouse = openClickHouse({ dataDir: join(dir, 'chdb') });
  let closed = false;
  const lines: string[] = [];
  const say = (line: string) => {
    console.log(line);
    lines.push(line);
  };
  try {
    const watermarks = createPostgresWatermarkStore(pool);
    await watermarks.migrate();
    let now = new Date();
    const warehouse = fileUri(join(dir, 'warehouse'));
    const deps: PipelineDeps = {
      config: defaultConfig(),
      clickhouse,
      watermarks,
      catalog: createPostgresCatalog(pool, { catalogName: 'k2' }),
      store: new LocalObjectStore(),
      warehouse,
      clock: () => now,
      sourceClock: async () => now,
      leaseSeconds: 900,
      faults: NO_FAULTS,
      metrics: () => {},
      log: () => {},
    };

    // 1. Backlog: bronze rows over two hours, offloaded end to end (plan, stage, commit, watermark).
    say(
      `# k2-offload benchmark (${new Date().toISOString()}, ${backlogRows.toLocaleString('en')} bronze rows)`,
    );
    say('');
    say(
      `- generated ${backlogRows.toLocaleString('en')} trades (bronze, silver and gold through views) in ${seconds(seedMs)} s (separate process)`,
    );
    const rssBefore = rssMb();
    t = Date.now();
    const offload = await runCycle(deps, { tables: BRONZE });
    const offloadMs = Date.now() - t;
    // Read now: the high-water mark would otherwise include the baseline export below.
    const rssOffload = rssMb();
    const offloaded = offload.passes.reduce((n, p) => n + p.rows, 0);
    const batches = offload.passes.reduce((n, p) => n + p.tables.reduce((m, x) => m + x.batches, 0), 0);
    const ours = offloaded / (offloadMs / 1000);

    // 2. ClickHouse writing the same rows to Parquet by itself, same engine, same run.
    const cursors = await Promise.all(BRONZE.map(async (b) => (await watermarks.get(b))?.cursor as string));
    t = Date.now();
    let exported = 0;
    for (const [i, b] of BRONZE.entries()) {
      await clickhouse.command({
        query: `INSERT INTO FUNCTION file('baseline/${b}.parquet', 'Parquet')
          SELECT * FROM k2.${b} WHERE ingestion_timestamp < parseDateTime64BestEffort('${cursors[i]}', 3, 'UTC')
          SETTINGS engine_file_truncate_on_insert = 1, output_format_parquet_compression_method = 'zstd'`,
      });
      const [c] = await queryRows<{ n: string }>(
        clickhouse,
        `SELECT count() AS n FROM file('baseline/${b}.parquet')`,
      );
      exported += Number(c?.n ?? 0);
    }
    const exportMs = Date.now() - t;
    const theirs = exported / (exportMs / 1000);
    say('');
    say('| measure | value | target |');
    say('| --- | --- | --- |');
    say(
      `| end-to-end offload, bronze | ${Math.round(ours).toLocaleString('en')} rows/s (${offloaded.toLocaleString('en')} rows, ${batches} batches, ${seconds(offloadMs)} s) | >= 1,000,000 rows/s |`,
    );
    say(
      `| ClickHouse's own Parquet export, same rows | ${Math.round(theirs).toLocaleString('en')} rows/s (${exported.toLocaleString('en')} rows, ${seconds(exportMs)} s) | (the limit here) |`,
    );
    say(`| ratio ours / ClickHouse | ${(ours / theirs).toFixed(2)} | >= 0.70 |`);
    say(
      `| peak RSS during the offload (process incl. embedded ClickHouse) | ${rssOffload} MB (${rssBefore} MB before it) | <= 512 MB |`,
    );

    // 3. A normal cycle: ~100K new bronze rows in the last 15 minutes, all ten tables.
    now = new Date(backlogEnd.getTime() + 10 * 60_000);
    await runCycle(deps, {}); // silver and gold catch up on the backlog first
    const normalEnd = new Date(now.getTime() + 15 * 60_000);
    await generateTrades(clickhouse, {
      rows: 100_000,
      spanHours: 0.25,
      end: normalEnd,
      lateFraction: 0.01,
      seed: 12,
    });
    now = new Date(normalEnd.getTime() + 5 * 60_000);
    t = Date.now();
    const normal = await runCycle(deps, {});
    const normalMs = Date.now() - t;
    const normalRows = normal.passes.reduce((n, p) => n + p.rows, 0);
    say(
      `| normal 10-table cycle (~100K new bronze rows) | ${seconds(normalMs)} s (${normalRows.toLocaleString('en')} rows, ${normal.passes.length} passes) | <= 5 s |`,
    );

    // 4. Planning and the watermark commit alone, per table.
    now = new Date(now.getTime() + 60_000);
    t = Date.now();
    const plan = await planCycle(deps, {});
    const planMs = (Date.now() - t) / deps.config.tables.length;
    for (const l of plan.layers)
      for (const tp of l.tables) await watermarks.releaseLease(tp.table, tp.leaseToken);
    const lease = await watermarks.acquireLease('bronze_trades_binance', 'bench', 60);
    const start = (await watermarks.get('bronze_trades_binance'))?.cursor as string;
    const samples: number[] = [];
    let cursor = start;
    for (let i = 0; i < 50 && lease.acquired; i++) {
      const end = new Date(Date.parse(cursor) + 1000).toISOString();
      t = performance.now();
      await watermarks.advance({
        table: 'bronze_trades_binance',
        batchId: `bench${i}`.padEnd(32, '0'),
        windowStart: cursor,
        windowEnd: end,
        leaseToken: lease.token,
        rows: 0,
        files: 0,
        bytes: 0,
        durationMs: 0,
        outcome: 'committed',
      });
      samples.push(performance.now() - t);
      cursor = end;
    }
    samples.sort((a, b) => a - b);
    say(`| planning, per table | ${planMs.toFixed(1)} ms | <= 50 ms |`);
    say(
      `| watermark commit (CAS + history), median / p95 | ${samples[25]?.toFixed(1)} / ${samples[47]?.toFixed(1)} ms | <= 50 ms |`,
    );

    // 5. The AWS staging path: the same backlog rows streamed to S3 (moto) through this process, against
    // ClickHouse writing them to the same S3 itself. Children open chDB's data dir, so it is closed here.
    await clickhouse.close();
    closed = true;
    const from = new Date(backlogEnd.getTime() - 24 * 3_600_000).toISOString();
    const windows = BRONZE.map((table, i) => ({ table, start: from, end: cursors[i] as string }));
    const { ours: streamed, theirs: own } = await benchStreamToS3(dir, windows);
    const rate = (r: { rows: number; ms: number }) => r.rows / (r.ms / 1000);
    say(
      `| staging streamed to S3 (moto) through the process, bronze | ${Math.round(rate(streamed)).toLocaleString('en')} rows/s (${streamed.rows.toLocaleString('en')} rows, ${seconds(streamed.ms)} s), peak RSS ${streamed.rssMb} MB | |`,
    );
    say(
      `| ClickHouse's own export of the same rows to the same S3 | ${Math.round(rate(own)).toLocaleString('en')} rows/s (${own.rows.toLocaleString('en')} rows, ${seconds(own.ms)} s), peak RSS ${own.rssMb} MB | (the limit here) |`,
    );
    say(`| ratio streamed / ClickHouse to S3 | ${(rate(streamed) / rate(own)).toFixed(2)} | >= 0.80 |`);
    say(
      `| peak RSS of the streamed staging (own process) | ${streamed.rssMb} MB (${streamed.openRssMb} MB with chDB open, before writing; ClickHouse's own export: ${own.rssMb} / ${own.openRssMb} MB) | <= 512 MB |`,
    );
    for (const row of benchCliStartup({
      home: join(dir, 'cli-home'),
      databaseUrl: url.toString(),
      warehouse: join(dir, 'cli-warehouse'),
    }))
      say(row);
    say('');
    say(
      'Machine: 2 cores; ClickHouse is chDB in the same process, Postgres local; warehouse on local disk; S3 is moto (Python) on this machine.',
    );
    await writeFile(outPath, `${lines.join('\n')}\n`);
    console.log(`\nwritten to ${outPath}`);
  } finally {
    if (!closed) await clickhouse.close();
    await pool.end();
    await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`).catch(() => undefined);
    await admin.end();
    await embedded?.stop();
    for (const data of await embeddedDataDirs(join(dir, 'pg')))
      await rm(data, { recursive: true, force: true });
    await rm(dir, { recursive: true, force: true });
  }
}

(values.seed ? seed(values.seed, backlogRows, values.out as string) : main()).catch((error) => {
  console.error(error);
  process.exit(1);
});
