/**
 * The two sides of the comparison, each in a child process of its own so that its peak RSS and CPU
 * time are its own: our CLI (`k2-offload run`, exactly as a user starts it) and ClickHouse's own export
 * of the same rows (bench/export.ts).
 */
import { spawn } from 'node:child_process';
import { readFile, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '..');
const USAGE = join(ROOT, 'bench', 'usage.mjs');

/** Peak RSS and CPU time of a whole child process, start-up included (written by bench/usage.mjs). */
export type Usage = { peakRssMb: number; cpuMs: number };

/** Where a run happens: the folder holding `.k2` (chDB's data) and the database the CLI uses. */
export type Place = { dir: string; databaseUrl: string; warehouse: string };

type ChildRun = { stdout: string; wallMs: number; usage: Usage };

/**
 * The environment of ClickHouse's side: the engine's allocator as it ships. Empty, so openClickHouse
 * leaves it (the CLI sets its own, src/clickhouse/client.ts), and an operator's MALLOC_CONF does not
 * reach it either.
 */
export const SHIPPED_ALLOCATOR = { MALLOC_CONF: '' };

async function runChild(
  args: string[],
  place: Place,
  tag: string,
  env: Record<string, string> = {},
): Promise<ChildRun> {
  const usageFile = join(place.dir, `usage-${tag}-${process.pid}.json`);
  const started = performance.now();
  const stdout = await new Promise<string>((ok, fail) => {
    const child = spawn(process.execPath, ['--import', USAGE, ...args], {
      cwd: place.dir,
      env: {
        ...process.env,
        K2_HOME: join(place.dir, '.k2'),
        WAREHOUSE: place.warehouse,
        DATABASE_URL: place.databaseUrl,
        K2_BENCH_USAGE: usageFile,
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      err += chunk.toString();
    });
    child.on('exit', (code) =>
      code === 0 ? ok(out) : fail(new Error(`${tag} exited with ${code}: ${(err || out).slice(-2000)}`)),
    );
  });
  const wallMs = performance.now() - started;
  const usage = JSON.parse(await readFile(usageFile, 'utf8')) as Usage;
  await rm(usageFile, { force: true });
  return { stdout, wallMs, usage };
}

export type OursResult = {
  rows: number;
  /** The run's own cycle time (its "N rows in ... s" line): plan, stage, commit, watermark. */
  cycleMs: number;
  /** The whole CLI process, start-up, Postgres and chDB initialisation included. */
  wallMs: number;
  usage: Usage;
  /** Cursor of the table after the run: the end of what was offloaded. */
  cursor: string;
};

/** `k2-offload run --tables <table> [--until] --json`, as a user runs it. */
export async function runOurs(place: Place, table: string, until?: string): Promise<OursResult> {
  const args = ['run', '--tables', table, '--json', ...(until ? ['--until', until] : [])];
  const run = await runChild([join(ROOT, 'bin', 'k2-offload.mjs'), ...args], place, table);
  const report = JSON.parse(run.stdout) as {
    seconds: number;
    tables: Array<{ table: string; rows: number; status: string; cursor: string; error: string | null }>;
  };
  const mine = report.tables.find((t) => t.table === table);
  if (mine?.status !== 'succeeded')
    throw new Error(`offload of ${table} did not succeed: ${mine?.error ?? mine?.status}`);
  return {
    rows: mine.rows,
    cycleMs: report.seconds * 1000,
    wallMs: run.wallMs,
    usage: run.usage,
    cursor: mine.cursor,
  };
}

/** Runs tables without measuring them (upstream tables a measured one depends on). */
export async function runUnmeasured(place: Place, tables: string[], until?: string): Promise<void> {
  const args = ['run', '--tables', tables.join(','), '--json', ...(until ? ['--until', until] : [])];
  await runChild([join(ROOT, 'bin', 'k2-offload.mjs'), ...args], place, 'upstream');
}

export type TheirsResult = { rows: number; ms: number; cpuMs: number; usage: Usage };

/** ClickHouse's own export of the table's rows before `until` (bench/export.ts). */
export async function runTheirs(place: Place, table: string, until: string, tag: string) {
  const out = join(place.dir, 'baseline', `${table}-${tag}.parquet`);
  const script = join(ROOT, 'bench', 'export.ts');
  const home = join(place.dir, '.k2');
  const args = ['--home', home, '--table', table, '--until', until, '--out', out];
  const run = await runChild(
    [...process.execArgv, script, ...args],
    place,
    `export-${table}`,
    SHIPPED_ALLOCATOR,
  );
  const result = JSON.parse(run.stdout.trim().split('\n').pop() ?? '') as Omit<TheirsResult, 'usage'>;
  await rm(out, { force: true });
  return { ...result, usage: run.usage } satisfies TheirsResult;
}
