import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const RUNS = 5;

/** Wall time of `node argv` in its own process, best and median of RUNS, in seconds. */
function timed(argv: string[], env: NodeJS.ProcessEnv): { best: number; median: number } {
  const times: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t = performance.now();
    spawnSync(process.execPath, argv, { cwd: ROOT, env, stdio: 'ignore' });
    times.push((performance.now() - t) / 1000);
  }
  times.sort((a, b) => a - b);
  return { best: times[0] as number, median: times[Math.floor(RUNS / 2)] as number };
}

/**
 * CLI start-up as a user meets it, as markdown table rows: `--help` compiled (what `npm ci` builds),
 * from the TypeScript through tsx without its cache (what every start cost before), and `status` on an
 * embedded ClickHouse with the given Postgres; Node's own start as the floor.
 */
export function benchCliStartup(status: { home: string; databaseUrl: string; warehouse: string }): string[] {
  const env: NodeJS.ProcessEnv = { ...process.env, TSX_DISABLE_CACHE: '1' };
  delete env.CLICKHOUSE_URL;
  const bin = 'bin/k2-offload.mjs';
  const row = (what: string, r: { best: number; median: number }, target: string) =>
    `| CLI start-up: ${what}, best / median of ${RUNS} | ${r.best.toFixed(2)} / ${r.median.toFixed(2)} s | ${target} |`;
  spawnSync(process.execPath, ['scripts/build-cli.mjs'], { cwd: ROOT, stdio: 'ignore' });
  const statusEnv = {
    ...env,
    K2_HOME: status.home,
    DATABASE_URL: status.databaseUrl,
    WAREHOUSE: status.warehouse,
  };
  spawnSync(process.execPath, [bin, 'status'], { cwd: ROOT, env: statusEnv, stdio: 'ignore' }); // creates chDB
  return [
    row('node -e 0 (the floor)', timed(['-e', '0'], env), ''),
    row('--help, compiled', timed([bin, '--help'], env), '<= 0.3 s'),
    row('--help, TypeScript through tsx', timed(['--import', 'tsx', 'bin/offload.ts', '--help'], env), ''),
    row('status, compiled, embedded ClickHouse', timed([bin, 'status'], statusEnv), '<= 1.5 s'),
  ];
}
