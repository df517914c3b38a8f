import { execFile, spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { Io } from '../../src/cli/context.ts';
import { main } from '../../src/cli/main.ts';

export const BIN = fileURLToPath(new URL('../../bin/k2-offload.mjs', import.meta.url));

export type CliResult = { code: number; stdout: string; stderr: string; json: () => unknown };

const result = (code: number, stdout: string, stderr: string): CliResult => ({
  code,
  stdout,
  stderr,
  json: () => JSON.parse(stdout),
});

/**
 * The CLI in this process, output captured; `now`, when given, is every clock of the test's world: the
 * commands', ClickHouse's (window bounds) and Postgres's (leases). Without it the real clocks run: only
 * for commands that stop before any window or lease is reckoned (usage, refusals, unreachable servers).
 */
export async function cli(argv: string[], env: NodeJS.ProcessEnv, now?: () => Date): Promise<CliResult> {
  const out = new PassThrough();
  const err = new PassThrough();
  const chunks = { out: [] as Buffer[], err: [] as Buffer[] };
  out.on('data', (c: Buffer) => chunks.out.push(c));
  err.on('data', (c: Buffer) => chunks.err.push(c));
  const io: Io = now
    ? { stdout: out, stderr: err, env, clock: now, sourceClock: async () => now(), databaseClock: now }
    : { stdout: out, stderr: err, env, clock: () => new Date() };
  const code = await main(argv, io);
  return result(code, Buffer.concat(chunks.out).toString(), Buffer.concat(chunks.err).toString());
}

/** The CLI as users run it: `bin/k2-offload.mjs` in its own process. */
export function spawnCli(
  argv: string[],
  options: { env: NodeJS.ProcessEnv; cwd: string },
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...argv], {
      cwd: options.cwd,
      env: options.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    child.on('error', reject);
    child.on('close', (code) =>
      resolve(result(code ?? -1, Buffer.concat(out).toString(), Buffer.concat(err).toString())),
    );
  });
}

/** The environment of a child CLI: this process's, less the variables that would point it elsewhere. */
export function childEnv(vars: Record<string, string>): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const k of [
    'CLICKHOUSE_URL',
    'DATABASE_URL',
    'WAREHOUSE',
    'S3_ENDPOINT',
    'K2_HOME',
    'K2_CATALOG',
    'K2_DEBUG',
  ])
    delete env[k];
  return { ...env, ...vars };
}

/**
 * Runs one statement on an embedded ClickHouse data directory between CLI runs, in a process of its
 * own: chDB binds one data directory per process, so the test process must not hold it.
 */
export async function embeddedSql(dataDir: string, sql: string): Promise<void> {
  const chdb = createRequire(import.meta.url).resolve('chdb');
  const script = `const { Session } = require(${JSON.stringify(chdb)});
const s = new Session(${JSON.stringify(dataDir)});
s.queryAsync(${JSON.stringify(sql)}).then(() => s.close(), (e) => { s.close(); console.error(e.message); process.exit(1); });`;
  await promisify(execFile)(process.execPath, ['-e', script]);
}
