import { userInfo } from 'node:os';
import { InputError } from '../errors.ts';
import { parseInstant } from '../plan/time.ts';
import { openRuntime, type Runtime } from '../runtime/open.ts';
import type { OptionSpecs, Parsed } from './args.ts';
import { setOutputWidth, terminalWidth, toJson, wrapText } from './output.ts';

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
  /** An event of the command's work, to stderr: a JSON line (`--log-format json`) or progress text. */
  event: (line: Record<string, unknown>) => void;
  logFormat: LogFormat;
  /** The configured servers, or the embedded ones; the caller closes it. */
  open: (options?: { createHome?: boolean }) => Promise<Runtime>;
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

/**
 * `K2_TEST_NOW` (an ISO instant) stops every clock of a command at that instant: its own, ClickHouse's
 * (window bounds) and Postgres's (lease expiry), as a test's `Io` does in-process. It is how tests that
 * run the CLI as a child process place their data relative to a known now. Named for what it is, and
 * announced on stderr by every command it affects, so a real run cannot be stopped in time unnoticed.
 */
const TEST_NOW_VARIABLE = 'K2_TEST_NOW';

function withTestClock(io: Io): { io: Io; testNow?: string } {
  const given = io.env[TEST_NOW_VARIABLE];
  if (given === undefined || given === '') return { io };
  const at = parseInstant(given, TEST_NOW_VARIABLE);
  const now = () => new Date(at);
  return {
    io: { ...io, clock: now, sourceClock: async () => now(), databaseClock: now },
    testNow: now().toISOString(),
  };
}

/** Commands that change nothing: they wait for a command holding the embedded engines. */
function isReadOnly(command: string, args: Parsed): boolean {
  if (['status', 'plan', 'audit', 'config'].includes(command)) return true;
  if (command === 'watermark') return args.positionals[0] === 'show';
  return (command === 'run' || command === 'maintain') && args.values['dry-run'] === true;
}

/** How events of a command (a batch committed, a table failed, a reconcile) reach stderr. */
export type LogFormat = 'text' | 'json';

function logFormatOf(args: Parsed, env: NodeJS.ProcessEnv): LogFormat {
  const given = typeof args.values['log-format'] === 'string' ? args.values['log-format'] : env.K2_LOG;
  if (given === undefined || given === '' || given === 'text') return 'text';
  if (given === 'json') return 'json';
  throw new InputError(`log format ${JSON.stringify(given)} (--log-format or K2_LOG): use text or json`, {
    value: given,
  });
}

/** One line of text for people, for the events worth seeing while a long command runs. */
function eventText(line: Record<string, unknown>): string | undefined {
  const rows = typeof line.rows === 'number' ? `${line.rows.toLocaleString('en-US')} rows, ` : '';
  if (line.event === 'batch-committed') return `  ${line.table}: ${rows}cursor -> ${line.cursor}`;
  if (line.event === 'reconciled') return `  ${line.table}: reconciled with Iceberg, cursor -> ${line.to}`;
  if (line.event === 'table-failed') return `  ${line.table}: failed at ${line.step}: ${line.error}`;
  return undefined;
}

export function makeContext(given: Io, command: string, args: Parsed): Context {
  const { io, testNow } = withTestClock(given);
  const json = args.values.json === true;
  // `K2_CONFIG` lets a stage's runbooks work without repeating --config on every command.
  const configPath =
    typeof args.values.config === 'string' ? args.values.config : io.env.K2_CONFIG || undefined;
  const debug = io.env.K2_DEBUG === '1';
  const logFormat = logFormatOf(args, io.env);
  setOutputWidth(args.values.wide === true ? undefined : terminalWidth(io.stdout, io.env));
  // stdout holds the result alone; events go to stderr: JSON lines for log shippers, or progress
  // lines on a terminal (all of them with K2_DEBUG=1).
  const event = (line: Record<string, unknown>) => {
    if (logFormat === 'json') {
      io.stderr.write(`${JSON.stringify({ time: io.clock().toISOString(), command, ...line })}\n`);
      return;
    }
    if (debug) io.stderr.write(`${JSON.stringify(line)}\n`);
    else if (io.stderr.isTTY && !json) {
      const text = eventText(line);
      if (text) io.stderr.write(`${wrapText(text)}\n`);
    }
  };
  if (testNow !== undefined) {
    if (logFormat === 'json') event({ event: 'test-clock', now: testNow });
    else io.stderr.write(`${testClockNotice(testNow)}\n`);
  }
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
    event,
    logFormat,
    open: (options = {}) =>
      openRuntime({
        configPath,
        env: io.env,
        clock: io.clock,
        ...(io.sourceClock ? { sourceClock: io.sourceClock } : {}),
        ...(io.databaseClock ? { databaseClock: io.databaseClock } : {}),
        log: event,
        command: {
          name: command,
          readOnly: isReadOnly(command, args),
          onWait: (message) => io.stderr.write(`${wrapText(message)}\n`),
        },
        ...options,
      }),
  };
}

/** What a command run with `K2_TEST_NOW` says first, on stderr. */
export const testClockNotice = (now: string) =>
  `k2-offload: every clock stopped at ${now} by ${TEST_NOW_VARIABLE} (for tests); unset it for real runs`;

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
export async function withRuntime<T>(
  ctx: Context,
  body: (rt: Runtime) => Promise<T>,
  options: { createHome?: boolean } = {},
): Promise<T> {
  const rt = await ctx.open(options);
  openRuntimes.add(rt);
  try {
    return await body(rt);
  } finally {
    openRuntimes.delete(rt);
    await rt.close();
  }
}
