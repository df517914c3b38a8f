import { userInfo } from 'node:os';
import { openRuntime, type Runtime } from '../runtime/open.ts';
import type { OptionSpecs, Parsed } from './args.ts';
import { toJson } from './output.ts';

/** Where a command reads and writes: the process in the CLI, buffers in tests. */
export type Io = {
  stdout: NodeJS.WritableStream & { isTTY?: boolean };
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
  env: NodeJS.ProcessEnv;
  clock: () => Date;
  /**
   * Tests that simulate a world: the clocks of ClickHouse (window bounds) and Postgres (lease expiry).
   * Unset, as in the real CLI, those servers' own clocks are read.
   */
  sourceClock?: () => Promise<Date>;
  databaseClock?: () => Date;
};

export type Context = {
  io: Io;
  command: string;
  json: boolean;
  configPath: string | undefined;
  /** A line (or lines) for people; nothing is printed in `--json` mode. */
  say: (text: string) => void;
  /** The one JSON document of a `--json` run. */
  emit: (value: unknown) => void;
  /** The configured servers, or the embedded ones; the caller closes it. */
  open: () => Promise<Runtime>;
};

export type Command = {
  name: string;
  summary: string;
  usage: string;
  description: string;
  options: OptionSpecs;
  maxPositionals?: number;
  run: (args: Parsed, ctx: Context) => Promise<number>;
};

export function processIo(): Io {
  return { stdout: process.stdout, stderr: process.stderr, env: process.env, clock: () => new Date() };
}

export function makeContext(io: Io, command: string, args: Parsed): Context {
  const json = args.values.json === true;
  const configPath = typeof args.values.config === 'string' ? args.values.config : undefined;
  const debug = io.env.K2_DEBUG === '1';
  return {
    io,
    command,
    json,
    configPath,
    say: (text) => {
      if (!json) io.stdout.write(`${text}\n`);
    },
    emit: (value) => {
      if (json) io.stdout.write(`${toJson(value)}\n`);
    },
    open: () =>
      openRuntime({
        configPath,
        env: io.env,
        clock: io.clock,
        ...(io.sourceClock ? { sourceClock: io.sourceClock } : {}),
        ...(io.databaseClock ? { databaseClock: io.databaseClock } : {}),
        log: (line) => {
          if (debug) io.stderr.write(`${JSON.stringify(line)}\n`);
        },
      }),
  };
}

/** Who made a manual change: `--actor`, else `$USER`, else the OS account. */
export function actorOf(args: Parsed, env: NodeJS.ProcessEnv): string {
  const given = args.values.actor;
  if (typeof given === 'string' && given.trim() !== '') return given.trim();
  if (env.USER) return env.USER;
  try {
    return userInfo().username;
  } catch {
    return 'unknown';
  }
}

/** Runtimes open in this process: a signal releases the leases taken through them. */
export const openRuntimes = new Set<Runtime>();

/** Runs `body` with an open runtime and always closes it (stopping an embedded Postgres). */
export async function withRuntime<T>(ctx: Context, body: (rt: Runtime) => Promise<T>): Promise<T> {
  const rt = await ctx.open();
  openRuntimes.add(rt);
  try {
    return await body(rt);
  } finally {
    openRuntimes.delete(rt);
    await rt.close();
  }
}
