/**
 * Benchmarks (QUALITY.md), printing ratios and writing them to bench/latest-run.md (bench/results.md is the
 * analysed record: runs, profile, AWS costs):
 * - our offload of `--rows` new rows of bronze (bronze_trades_binance) and of silver (silver_trades),
 *   through the CLI exactly as a user runs it (`k2-offload run --tables ...`), against ClickHouse's own
 *   Parquet export of exactly the rows the run offloaded (the same chDB on the same data, its default
 *   settings, only the compression set to ours), each side a child process of its own: rows/s, the
 *   ratio in-cycle and for the whole CLI (start-up included), peak RSS and CPU time of each side;
 * - a normal 10-table cycle's wall time, planning and the watermark commit per table;
 * - the AWS staging path: rows streamed to S3 (moto) through the process against ClickHouse's own
 *   export to the same S3.
 *
 *   npm run bench                                 # 5M rows per table, 2 repeats (a few minutes)
 *   npm run bench -- --rows 1000000 --repeat 1   # a quick run
 */
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { openClickHouse } from '../src/clickhouse/client.ts';
import { createDemoSchema } from '../src/clickhouse/demo.ts';
import { generateTrades } from '../src/clickhouse/demo-trades.ts';
import { embeddedDataDirs, startEmbeddedPostgres } from '../src/postgres/embedded.ts';
import { benchCliStartup } from './cli-startup.ts';
import { measureExtras } from './extras.ts';
import {
  type OursResult,
  type Place,
  runOurs,
  runTheirs,
  runUnmeasured,
  type TheirsResult,
} from './sides.ts';
import { benchStreamToS3 } from './stream-s3.ts';

const { values } = parseArgs({
  options: {
    rows: { type: 'string', default: '5000000' },
    repeat: { type: 'string', default: '2' },
    out: { type: 'string', default: 'bench/latest-run.md' },
    'skip-s3': { type: 'boolean', default: false },
    'seed-dir': { type: 'string' },
    'seed-end': { type: 'string' },
  },
});
const rowsPerTable = Number(values.rows);
const repeats = Number(values.repeat);
for (const [name, n] of [
  ['--rows', rowsPerTable],
  ['--repeat', repeats],
] as const)
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer, got ${n}`);
const outPath = resolve(values.out as string);
const BRONZE = 'bronze_trades_binance';
const UPSTREAM = ['bronze_trades_kraken', 'bronze_trades_coinbase'];
const SILVER = 'silver_trades';
/** Trades are split 50/30/20 over the exchanges: twice the rows give binance `--rows` of them. */
const TRADES = 2 * rowsPerTable;
const SPAN_HOURS = 2;

/** Seeding runs in a child process, so no side ever shares a process with the data generator. */
async function seed(dir: string, end: string) {
  const clickhouse = openClickHouse({ dataDir: join(dir, '.k2', 'chdb') });
  await createDemoSchema(clickhouse);
  await generateTrades(clickhouse, {
    rows: TRADES,
    spanHours: SPAN_HOURS,
    end,
    lateFraction: 0.01,
    seed: 11,
  });
  await clickhouse.close();
}

function runSeedChild(dir: string, end: string): Promise<void> {
  const args = ['--seed-dir', dir, '--seed-end', end, '--rows', String(rowsPerTable)];
  return new Promise((ok, fail) => {
    const child = spawn(process.execPath, [...process.execArgv, process.argv[1] as string, ...args], {
      stdio: 'inherit',
    });
    child.on('exit', (code) => (code === 0 ? ok() : fail(new Error(`seeding exited with ${code}`))));
  });
}

type Pair = { table: string; rep: number; ours: OursResult; theirs: TheirsResult; load: number };

/** One measured table: our CLI run first (so any warm cache favours the baseline), then the export. */
async function measure(place: Place, table: string, rep: number, until?: string): Promise<Pair> {
  const load = loadavg()[0] as number;
  const ours = await runOurs(place, table, until);
  const theirs = await runTheirs(place, table, ours.cursor, `r${rep}`);
  if (theirs.rows !== ours.rows)
    throw new Error(`${table}: the offload moved ${ours.rows} rows, ClickHouse's export ${theirs.rows}`);
  return { table, rep, ours, theirs, load: Math.max(load, loadavg()[0] as number) };
}

const fmt = (n: number) => Math.round(n).toLocaleString('en');
const perSec = (rows: number, ms: number) => rows / (ms / 1000);
const cpuPerM = (ms: number, rows: number) => (ms / 1000 / (rows / 1e6)).toFixed(2);

function pairRow(p: Pair): string {
  const theirs = perSec(p.theirs.rows, p.theirs.ms);
  const cycle = perSec(p.ours.rows, p.ours.cycleMs);
  const whole = perSec(p.ours.rows, p.ours.wallMs);
  return `| ${p.table} | ${p.rep} | ${fmt(p.ours.rows)} | ${fmt(theirs)} | ${fmt(cycle)} | **${(cycle / theirs).toFixed(2)}** | ${fmt(whole)} | ${(whole / theirs).toFixed(2)} | ${(p.ours.wallMs / p.ours.cycleMs).toFixed(2)} | ${p.ours.usage.peakRssMb} / ${p.theirs.usage.peakRssMb} | ${cpuPerM(p.ours.usage.cpuMs, p.ours.rows)} / ${cpuPerM(p.theirs.cpuMs, p.theirs.rows)} | ${p.load.toFixed(1)} |`;
}

async function main() {
  const dir = await mkdtemp(join(tmpdir(), 'k2-bench-'));
  await mkdir(join(dir, 'baseline'));
  process.chdir(dir); // chDB's file() reaches only below the working directory
  const external = process.env.DATABASE_URL ?? process.env.PG_URL;
  const embedded = external ? undefined : await startEmbeddedPostgres(join(dir, 'pg'));
  const admin = new pg.Client({ connectionString: external ?? embedded?.url });
  await admin.connect();
  const databases: string[] = [];
  const place = async (rep: number): Promise<Place> => {
    const name = `k2_bench_${process.pid}_${rep}`;
    await admin.query(`CREATE DATABASE ${name}`);
    databases.push(name);
    const url = new URL((external ?? embedded?.url) as string);
    url.pathname = `/${name}`;
    return { dir, databaseUrl: url.toString(), warehouse: join(dir, `warehouse-${rep}`) };
  };
  const lines: string[] = [];
  const say = (line = '') => {
    console.log(line);
    lines.push(line);
  };
  try {
    const backlogEnd = new Date(Date.now() - 10 * 60_000);
    const backlogStart = new Date(backlogEnd.getTime() - SPAN_HOURS * 3_600_000);
    // Silver holds all three exchanges' trades: its first half holds about `--rows` of them.
    const silverUntil = new Date((backlogStart.getTime() + backlogEnd.getTime()) / 2).toISOString();
    const t = performance.now();
    await runSeedChild(dir, backlogEnd.toISOString());
    const seedMs = performance.now() - t;
    say(`# k2-offload benchmark (${new Date().toISOString()}, ${fmt(rowsPerTable)} rows per table)`);
    say();
    say(
      `- generated ${fmt(TRADES)} trades over ${SPAN_HOURS} h (bronze, silver and gold through views) in ${(seedMs / 1000).toFixed(1)} s (separate process)`,
    );
    say(`- machine: ${cpus().length} cores; load average at the start ${loadavg()[0]?.toFixed(1)}`);
    const pairs: Pair[] = [];
    let last: Place | undefined;
    for (let rep = 1; rep <= repeats; rep++) {
      last = await place(rep);
      pairs.push(await measure(last, BRONZE, rep));
      await runUnmeasured(last, UPSTREAM);
      pairs.push(await measure(last, SILVER, rep, silverUntil));
      for (const p of pairs.slice(-2)) console.log(pairRow(p));
    }
    say();
    say(
      '| table | run | rows | ClickHouse export, rows/s | ours in-cycle, rows/s | ratio in-cycle | ours whole CLI, rows/s | ratio whole CLI | whole CLI / cycle | peak RSS MB, ours / ClickHouse | CPU s per 1M rows, ours / ClickHouse | load avg |',
    );
    say('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
    for (const p of pairs) say(pairRow(p));
    say();
    say(
      'Targets: ratio in-cycle >= 0.8 (bronze), >= 0.7 (silver); whole CLI / cycle <= 1.5; peak RSS <= 512 MB. Ours: `k2-offload run --tables <table> --json` in a child process, cycle time from its report, whole CLI from spawn to exit; peak RSS and CPU of the whole process (start-up included). ClickHouse: `INSERT INTO FUNCTION file(...) SELECT * ... WHERE cursor < <the cursor our run reached>` with its default settings and zstd, chDB in a child of its own, the statement alone timed (CPU: the statement; peak RSS: the whole process).',
    );

    const place1 = last as Place;
    const extras = await measureExtras(place1, backlogEnd);
    say();
    say('| measure | value | target |');
    say('| --- | --- | --- |');
    say(
      `| normal 10-table cycle (~100K new bronze rows) | ${(extras.normal.ms / 1000).toFixed(2)} s (${fmt(extras.normal.rows)} rows, ${extras.normal.passes} passes) | <= 5 s |`,
    );
    say(`| planning, per table | ${extras.planMsPerTable.toFixed(1)} ms | <= 50 ms |`);
    say(
      `| watermark commit (CAS + history), median / p95 | ${extras.watermarkMs.median.toFixed(1)} / ${extras.watermarkMs.p95.toFixed(1)} ms | <= 50 ms |`,
    );

    if (!values['skip-s3']) {
      // The AWS staging path: the bronze backlog streamed to S3 (moto) through a process, against
      // ClickHouse writing it to the same S3 itself, each in a child of its own.
      const from = new Date(backlogStart.getTime() - 3_600_000).toISOString();
      const windows = [{ table: BRONZE, start: from, end: backlogEnd.toISOString() }];
      const { ours: streamed, theirs: own } = await benchStreamToS3(join(dir, '.k2'), windows);
      const rate = (r: { rows: number; ms: number }) => perSec(r.rows, r.ms);
      say(
        `| staging streamed to S3 (moto) through the process, bronze | ${fmt(rate(streamed))} rows/s (${fmt(streamed.rows)} rows, ${(streamed.ms / 1000).toFixed(2)} s), peak RSS ${streamed.rssMb} MB (${streamed.openRssMb} MB with chDB open) | |`,
      );
      say(
        `| ClickHouse's own export of the same rows to the same S3 | ${fmt(rate(own))} rows/s (${fmt(own.rows)} rows, ${(own.ms / 1000).toFixed(2)} s), peak RSS ${own.rssMb} MB (${own.openRssMb} MB with chDB open) | (the limit here) |`,
      );
      say(`| ratio streamed / ClickHouse to S3 | ${(rate(streamed) / rate(own)).toFixed(2)} | >= 0.80 |`);
    }
    for (const row of benchCliStartup({
      home: join(dir, 'cli-home'),
      databaseUrl: place1.databaseUrl,
      warehouse: join(dir, 'cli-warehouse'),
    }))
      say(row);
    say();
    say(
      `Load average at the end: ${loadavg()[0]?.toFixed(1)}. Postgres local; warehouse on local disk; S3 is moto.`,
    );
    await writeFile(outPath, `${lines.join('\n')}\n`);
    console.log(`\nwritten to ${outPath}`);
  } finally {
    for (const name of databases)
      await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => undefined);
    await admin.end();
    await embedded?.stop();
    for (const data of await embeddedDataDirs(join(dir, 'pg')))
      await rm(data, { recursive: true, force: true });
    await rm(dir, { recursive: true, force: true });
  }
}

(values['seed-dir'] ? seed(values['seed-dir'], values['seed-end'] as string) : main()).catch((error) => {
  console.error(error);
  process.exit(1);
});
