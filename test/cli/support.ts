import { spawn } from 'node:child_process';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
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
