import { userInfo } from 'node:os';
import { openRuntime, type Runtime } from '../runtime/open.ts';
import type { OptionSpecs, Parsed } from './args.ts';
import { setOutputWidth, terminalWidth, toJson, wrapText } from './output.ts';

/** Where a command reads and writes: the process in the CLI, buffers in tests. */
export type Io = {
  stdout: NodeJS.WritableStream & { isTTY?: boolean };
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
  env: NodeJS.ProcessEnv;
  clock: () => Date;
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
  /** The words its first argument takes (`watermark show`), for help and shell completion. */
  actions?: readonly string[];
  run: (args: Parsed, ctx: Context) => Promise<number>;
};

export function processIo(): Io {
  return { stdout: process.stdout, stderr: process.stderr, env: process.env, clock: () => new Date() };
}

export function makeContext(io: Io, command: string, args: Parsed): Context {
  const json = args.values.json === true;
  // `K2_CONFIG` lets a stage's runbooks work without repeating --config on every command.
  const configPath =
    typeof args.values.config === 'string' ? args.values.config : io.env.K2_CONFIG || undefined;
  const debug = io.env.K2_DEBUG === '1';
  setOutputWidth(args.values.wide === true ? undefined : terminalWidth(io.stdout, io.env));
  return {
    io,
    command,
    json,
    configPath,
    say: (text) => {
      if (!json) io.stdout.write(`${wrapText(text)}\n`);
    },
    emit: (value) => {
      if (json) io.stdout.write(`${toJson(value)}\n`);
    },
    open: () =>
      openRuntime({
        configPath,
        env: io.env,
        clock: io.clock,
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

/** Runs `body` with an open runtime and always closes it (stopping an embedded Postgres). */
export async function withRuntime<T>(ctx: Context, body: (rt: Runtime) => Promise<T>): Promise<T> {
  const rt = await ctx.open();
  try {
    return await body(rt);
  } finally {
    await rt.close();
  }
}
