/**
 * Where a staging write's time and memory go: one window of a table written by ClickHouse under each
 * setting that matters (the casts, row-group size, threads, parallel encoding, bloom filters), each in
 * a child process of its own so its peak RSS is its own, plus the window's histogram query (old and
 * new form). CPU seconds per million rows is the number to compare on a shared machine: wall time
 * follows the load of others.
 *
 *   npm run bench:profile                                   # seeds 5M bronze rows (10M trades)
 *   npm run bench:profile -- --table silver_trades --repeat 2
 *   npm run bench:profile -- --table silver_trades --rows 500000 --only 'parallel encoding'
 *     (only the writes whose name holds that text, no histogram: memory is flat in the rows, so a
 *     small window tells a setting's peak as well as a big one)
 *   npm run bench:profile -- --table silver_trades --rows 500000 --only try --try max_block_size=16384
 *     (a write with our settings and those changed, once per --try; `--only try` runs only those)
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { openClickHouse, queryRows } from '../src/clickhouse/client.ts';
import { ident, instantLiteral, qualifiedName } from '../src/clickhouse/sql.ts';
import { defaultConfig, tableByName } from '../src/config/load.ts';
import { checksumAggregateSql, formatHourSql, hourSql, hourStartSql } from '../src/hourly/sql.ts';
import { partitionTupleSql, stagingSelect } from '../src/stage/select.ts';

const { values } = parseArgs({
  options: {
    rows: { type: 'string', default: '5000000' },
    table: { type: 'string', default: 'bronze_trades_binance' },
    repeat: { type: 'string', default: '1' },
    variant: { type: 'string' },
    dir: { type: 'string' },
    window: { type: 'string' },
    only: { type: 'string' },
    try: { type: 'string', multiple: true },
  },
});
const table = tableByName(defaultConfig(), values.table as string);
const zstd = { output_format_parquet_compression_method: "'zstd'" };
const ours = {
  ...zstd,
  max_threads: 2,
  output_format_parquet_parallel_encoding: 1,
  output_format_parquet_row_group_size: 65_536,
  output_format_parquet_row_group_size_bytes: 16 * 1024 * 1024,
};
const noBloom = { output_format_parquet_write_bloom_filter: 0 };
/** [rows: the raw columns or the staging select with its casts, settings] */
const VARIANTS: Record<string, ['raw' | 'cast', Record<string, string | number>]> = {
  'ClickHouse defaults, raw columns (the baseline)': ['raw', zstd],
  'ClickHouse defaults, staging casts': ['cast', zstd],
  'before: casts, 64K-row groups, 2 threads, parallel encoding, bloom filters': ['cast', ours],
  'casts, 64K-row groups, 2 threads, parallel encoding, no bloom filters': ['cast', { ...ours, ...noBloom }],
  'after: casts, 64K-row groups, 2 threads, encoding on one, no bloom filters': [
    'cast',
    { ...ours, ...noBloom, output_format_parquet_parallel_encoding: 0 },
  ],
  'casts, 64K-row groups, 1 thread, no bloom filters': [
    'cast',
    { ...ours, ...noBloom, max_threads: 1, output_format_parquet_parallel_encoding: 0 },
  ],
  'casts, 256K-row groups, 2 threads, parallel encoding, no bloom filters': [
    'cast',
    { ...ours, ...noBloom, output_format_parquet_row_group_size: 262_144 },
  ],
  'casts, 1M-row groups, 2 threads, parallel encoding, no bloom filters': [
    'cast',
    { ...ours, ...noBloom, output_format_parquet_row_group_size: 1_000_000 },
  ],
  // What a wide row's parallel write holds besides its row groups: the blocks read (up to 64K rows
  // each, several in flight per thread) and the insert's squashing of them (up to 1M rows / 256 MB).
  'casts, 64K-row groups, 2 threads, parallel encoding, no bloom filters, 8K-row blocks': [
    'cast',
    { ...ours, ...noBloom, max_block_size: 8192 },
  ],
  'casts, 64K-row groups, 2 threads, parallel encoding, no bloom filters, 16 MB insert blocks': [
    'cast',
    { ...ours, ...noBloom, min_insert_block_size_bytes: 16 * 1024 * 1024 },
  ],
  'casts, 64K-row groups, 2 threads, parallel encoding, no bloom filters, 8 MB row groups': [
    'cast',
    { ...ours, ...noBloom, output_format_parquet_row_group_size_bytes: 8 * 1024 * 1024 },
  ],
  'casts, 64K-row groups, 2 threads, parallel encoding, no bloom filters, 8K-row blocks, 8 MB row groups': [
    'cast',
    {
      ...ours,
      ...noBloom,
      max_block_size: 8192,
      output_format_parquet_row_group_size_bytes: 8 * 1024 * 1024,
    },
  ],
};

for (const change of values.try ?? []) {
  const settings = Object.fromEntries(change.split(',').map((kv) => kv.split('=') as [string, string]));
  VARIANTS[`try ${change}`] = ['cast', { ...ours, ...noBloom, ...settings }];
}

const rssMb = () => Math.round(process.resourceUsage().maxRSS / 1024);

/** The first hour of the table's rows: one window as the planner cuts it. */
async function firstHour(dir: string) {
  const clickhouse = openClickHouse({ dataDir: join(dir, '.k2', 'chdb') });
  const source = qualifiedName(table.source.database, table.source.table);
  const cursor = ident(table.cursor.column);
  const [first] = await queryRows<{ s: string }>(
    clickhouse,
    `SELECT toString(toUnixTimestamp64Micro(toDateTime64(min(${cursor}), 6))) AS s FROM ${source}`,
  );
  await clickhouse.close();
  const start = new Date(Number(first?.s) / 1000);
  return { start: start.toISOString(), end: new Date(start.getTime() + 3_600_000).toISOString() };
}

/** Child: one variant's write, or the histogram queries; prints JSON. */
async function child(dir: string, variant: string, window: { start: string; end: string }) {
  process.chdir(dir);
  const clickhouse = openClickHouse({ dataDir: join(dir, '.k2', 'chdb') });
  await queryRows(clickhouse, 'SELECT 1');
  const openMb = rssMb();
  const timed = async (run: () => Promise<unknown>) => {
    const cpu = process.cpuUsage();
    const t = performance.now();
    await run();
    const used = process.cpuUsage(cpu);
    return { ms: performance.now() - t, cpuMs: (used.user + used.system) / 1000 };
  };
  const select = stagingSelect(table, window.start, window.end);
  const cursor = ident(table.cursor.column);
  if (variant === 'histogram') {
    const b = `intDiv(toUnixTimestamp64Milli(${cursor}) - ${Date.parse(window.start)}, 1758)`;
    const k = partitionTupleSql(table);
    const sum = checksumAggregateSql(table);
    const before = `SELECT ${b} AS b, ${k} AS k, ${hourSql(table)} AS h, count() AS rows, ${sum} AS sum FROM (${select}) GROUP BY b, k, h`;
    const after = `SELECT b, k, ${formatHourSql('hs')} AS h, rows, sum FROM (SELECT ${b} AS b, ${k} AS k, ${hourStartSql(table)} AS hs, count() AS rows, ${sum} AS sum FROM (${select}) GROUP BY b, k, hs)`;
    const [n] = await queryRows<{ n: string }>(clickhouse, `SELECT count() AS n FROM (${select})`);
    const out = {
      rows: Number(n?.n),
      before: await timed(() => queryRows(clickhouse, before)),
      after: await timed(() => queryRows(clickhouse, after)),
    };
    await clickhouse.close();
    return out;
  }
  const [kind, settings] = VARIANTS[variant] as (typeof VARIANTS)[string];
  const source = qualifiedName(table.source.database, table.source.table);
  const rows =
    kind === 'raw'
      ? `SELECT * FROM ${source} WHERE ${cursor} >= ${instantLiteral(window.start)} AND ${cursor} < ${instantLiteral(window.end)}`
      : select;
  const file = join(dir, `profile-${process.pid}.parquet`);
  const sql = Object.entries(settings)
    .map(([k, v]) => `${k} = ${v}`)
    .join(', ');
  const cost = await timed(() =>
    clickhouse.command({ query: `INSERT INTO FUNCTION file('${file}', 'Parquet') ${rows} SETTINGS ${sql}` }),
  );
  const [meta] = await queryRows<{ rows: string; bytes: string; groups: string }>(
    clickhouse,
    `SELECT num_rows AS rows, _size AS bytes, num_row_groups AS groups FROM file('${file}', 'ParquetMetadata')`,
  );
  await clickhouse.close();
  await rm(file);
  return {
    ...cost,
    rows: Number(meta?.rows),
    mb: Number(meta?.bytes) / 1e6,
    groups: Number(meta?.groups),
    openMb,
    peakMb: rssMb(),
  };
}

function runChild(dir: string, variant: string, window: { start: string; end: string }) {
  const script = new URL(import.meta.url).pathname;
  const args = [
    '--dir',
    dir,
    '--variant',
    variant,
    '--table',
    table.name,
    '--window',
    JSON.stringify(window),
    ...(values.try ?? []).flatMap((change) => ['--try', change]),
  ];
  const run = spawnSync(process.execPath, [...process.execArgv, script, ...args], { encoding: 'utf8' });
  if (run.status !== 0) throw new Error(`${variant}: ${run.stderr.slice(-1500)}`);
  return JSON.parse(run.stdout.trim().split('\n').pop() as string);
}

async function main() {
  const dir = await mkdtemp(join(tmpdir(), 'k2-profile-'));
  try {
    const rows = Number(values.rows);
    const end = new Date(Date.now() - 10 * 60_000).toISOString();
    await new Promise<void>((ok, fail) => {
      const seed = spawn(
        process.execPath,
        [
          ...process.execArgv,
          join(import.meta.dirname, 'run.ts'),
          '--seed-dir',
          dir,
          '--seed-end',
          end,
          '--rows',
          String(rows),
        ],
        { stdio: 'inherit' },
      );
      seed.on('exit', (code) => (code === 0 ? ok() : fail(new Error(`seeding exited with ${code}`))));
    });
    const window = await firstHour(dir);
    const perM = (x: number, n: number) => (x / 1000 / (n / 1e6)).toFixed(2);
    console.log(
      `${table.name}, window [${window.start}, ${window.end}), load average ${loadavg()[0]?.toFixed(1)}`,
    );
    console.log(
      '| step | rows | CPU s per 1M rows | wall s per 1M rows | peak RSS above chDB open, MB | file MB | row groups |',
    );
    console.log('| --- | --- | --- | --- | --- | --- | --- |');
    const only = values.only;
    for (let rep = 0; rep < Number(values.repeat); rep++) {
      const h = only === undefined ? runChild(dir, 'histogram', window) : undefined;
      for (const side of h ? (['before', 'after'] as const) : [])
        console.log(
          `| histogram (${side}) | ${h.rows} | ${perM(h[side].cpuMs, h.rows)} | ${perM(h[side].ms, h.rows)} | | | |`,
        );
      for (const variant of Object.keys(VARIANTS).filter((v) => only === undefined || v.includes(only))) {
        const r = runChild(dir, variant, window);
        console.log(
          `| write: ${variant} | ${r.rows} | ${perM(r.cpuMs, r.rows)} | ${perM(r.ms, r.rows)} | ${r.peakMb - r.openMb} | ${r.mb.toFixed(0)} | ${r.groups} |`,
        );
      }
    }
    console.log(`load average at the end ${loadavg()[0]?.toFixed(1)}`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

if (values.variant)
  child(values.dir as string, values.variant, JSON.parse(values.window as string)).then(
    (r) => console.log(JSON.stringify(r)),
    (error) => {
      console.error(error);
      process.exit(1);
    },
  );
else
  main().catch((error) => {
    console.error(error);
    process.exit(1);
  });
