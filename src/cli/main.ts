import { ConfigError, InputError, OffloadError } from '../errors.ts';
import { helpText, parseCommandArgs } from './args.ts';
import { auditCommand } from './commands/audit.ts';
import { catchUpCommand } from './commands/catch-up.ts';
import { completionCommand } from './commands/completion.ts';
import { configCommand } from './commands/config.ts';
import { demoCommand } from './commands/demo.ts';
import { maintainCommand } from './commands/maintain.ts';
import { planCommand } from './commands/plan.ts';
import { repairCommand } from './commands/repair.ts';
import { runCommand } from './commands/run.ts';
import { statusCommand } from './commands/status.ts';
import { watermarkCommand } from './commands/watermark.ts';
import { type Command, type Io, makeContext, openRuntimes, processIo } from './context.ts';
import { toJson } from './output.ts';
import { VERSION } from './version.ts';

export const EXIT = { ok: 0, failure: 1, usage: 2 } as const;

export const COMMANDS: readonly Command[] = [
  statusCommand,
  planCommand,
  runCommand,
  catchUpCommand,
  watermarkCommand,
  auditCommand,
  repairCommand,
  maintainCommand,
  configCommand,
  demoCommand,
  completionCommand(() => COMMANDS),
];

export function overview(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    'Usage: k2-offload <command> [options]',
    '',
    'Moves new rows of ClickHouse tables into Iceberg tables, exactly once.',
    '',
    'Commands:',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    'Every command takes --config PATH (or K2_CONFIG), --json and --help;',
    'k2-offload help COMMAND shows one command, k2-offload --version the version.',
    'Environment: CLICKHOUSE_URL, DATABASE_URL, WAREHOUSE, S3_ENDPOINT, K2_HOME, K2_CATALOG;',
    'unset, the embedded components are used (chDB, a Postgres under K2_HOME, ./warehouse).',
    'Exit codes: 0 ok, 1 failure / mismatch / unhealthy, 2 bad usage or input.',
  ].join('\n');
}

/**
 * Ctrl-C and SIGTERM end any command, but first give back the leases it holds: otherwise the tables
 * stay locked for a lease period, and `plan` calls a backlog "nothing to offload now". Exit code 128 +
 * the signal's number, as shells report it.
 */
export function releaseLeasesOnSignals(stderr: NodeJS.WritableStream = process.stderr): void {
  const codes = { SIGINT: 130, SIGTERM: 143 } as const;
  for (const signal of Object.keys(codes) as Array<keyof typeof codes>)
    process.once(signal, async () => {
      // The command, its connections closed under it, fails on its way out: that is not its result.
      signalled = codes[signal];
      const released: string[] = [];
      for (const rt of openRuntimes)
        released.push(...(await rt.watermarks.releaseOwnLeases().catch(() => ({ tables: [] }))).tables);
      stderr.write(
        `k2-offload: ${signal}: stopped${released.length ? `; released the leases of ${released.join(', ')}` : ''}\n`,
      );
      await Promise.all([...openRuntimes].map((rt) => rt.close().catch(() => undefined)));
      process.exit(codes[signal]);
    });
}

let signalled: number | undefined;

/** Bad input (usage, config, arguments) is 2; everything else that went wrong is 1. */
export function exitCodeOf(error: unknown): number {
  return error instanceof InputError || error instanceof ConfigError ? EXIT.usage : EXIT.failure;
}

function describe(error: unknown, debug: boolean): string {
  if (error instanceof OffloadError) return error.message;
  const e = error as Error;
  return `unexpected ${e?.name ?? 'error'}: ${e?.message ?? String(error)}${debug ? '' : ' (set K2_DEBUG=1 for the stack trace)'}`;
}

/** The whole CLI: argv in, exit code out. Never throws. */
export async function main(argv: string[], io: Io = processIo()): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined) {
    io.stderr.write(`${overview()}\n`);
    return EXIT.usage;
  }
  if (name === '--version' || name === '-V' || name === 'version') {
    io.stdout.write(`k2-offload ${VERSION}\n`);
    return EXIT.ok;
  }
  if (name === 'help' && rest[0] !== undefined) return main([rest[0], '--help'], io);
  if (name === '--help' || name === '-h' || name === 'help') {
    io.stdout.write(`${overview()}\n`);
    return EXIT.ok;
  }
  const command = COMMANDS.find((c) => c.name === name);
  if (!command) {
    io.stderr.write(
      `k2-offload: unknown command ${JSON.stringify(name)}; commands: ${COMMANDS.map((c) => c.name).join(', ')} (see k2-offload --help)\n`,
    );
    return EXIT.usage;
  }
  const debug = io.env.K2_DEBUG === '1';
  let json = rest.includes('--json');
  try {
    const args = parseCommandArgs(command.name, rest, command.options, command.maxPositionals ?? 0);
    if (args.values.help === true) {
      io.stdout.write(`${helpText(command.name, command.usage, command.description, command.options)}\n`);
      return EXIT.ok;
    }
    json = args.values.json === true;
    const code = await command.run(args, makeContext(io, command.name, args));
    return signalled ?? code;
  } catch (error) {
    if (signalled !== undefined) return signalled;
    io.stderr.write(`k2-offload ${command.name}: ${describe(error, debug)}\n`);
    if (debug && error instanceof Error && error.stack) io.stderr.write(`${error.stack}\n`);
    const code = exitCodeOf(error);
    if (json)
      io.stdout.write(
        `${toJson({
          ok: false,
          exitCode: code,
          error:
            error instanceof OffloadError
              ? error.toJSON()
              : { name: (error as Error)?.name ?? 'Error', message: describe(error, true) },
        })}\n`,
      );
    return code;
  }
}
