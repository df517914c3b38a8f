import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { testClockNotice } from '../../src/cli/context.ts';
import { COMMANDS } from '../../src/cli/main.ts';
import { DEFAULT_TABLES } from '../../src/config/defaults.ts';
import { childEnv, cli, spawnCli } from './support.ts';

// Servers that do not exist: a command that got as far as opening them would fail with exit code 1,
// so exit code 2 also proves the input was refused before anything was opened or written.
const nowhere = {
  CLICKHOUSE_URL: 'http://127.0.0.1:1',
  DATABASE_URL: 'postgres://127.0.0.1:1/x',
  K2_HOME: join(tmpdir(), 'k2-cli-usage-never-created'),
  WAREHOUSE: join(tmpdir(), 'k2-cli-usage-never-created', 'warehouse'),
};

describe('k2-offload usage', () => {
  it('prints help for every command, with the common options, and exits 0', async () => {
    for (const command of COMMANDS) {
      const r = await cli([command.name, '--help'], nowhere);
      expect(r.code, command.name).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`^Usage: k2-offload ${command.name}`));
      expect(r.stdout).toContain('--config PATH');
      expect(r.stdout).toContain('--json');
    }
    const overview = await cli(['--help'], nowhere);
    expect(overview.code).toBe(0);
    for (const command of COMMANDS) expect(overview.stdout).toContain(command.name);
  });

  it('refuses a missing or unknown command and an unknown option with exit code 2', async () => {
    expect((await cli([], nowhere)).code).toBe(2);
    const unknown = await cli(['offload'], nowhere);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('unknown command "offload"; commands: status, plan, run');
    const option = await cli(['run', '--tabels', 'x'], nowhere);
    expect(option.code).toBe(2);
    expect(option.stderr).toBe(
      "k2-offload run: Unknown option '--tabels' (did you mean --tables?); see k2-offload run --help\n",
    );
  });

  it('refuses an unknown table in --tables, naming it and the configured ones', async () => {
    const r = await cli(['run', '--tables', 'bronze_trades_binance,bronze_trades_nyse'], nowhere);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(
      'unknown table "bronze_trades_nyse"; configured tables: bronze_trades_binance',
    );
    expect(r.stderr.split('\n').filter(Boolean)).toHaveLength(1);
  });

  it('refuses a repair without a known --table before opening anything', async () => {
    const missing = await cli(['repair'], nowhere);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('repair needs --table NAME');
    const unknown = await cli(['repair', '--table', 'bronze_trades_nyse'], nowhere);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('bronze_trades_nyse');
    const hours = await cli(['repair', '--table', 'silver_trades', '--hours', '0'], nowhere);
    expect(hours.code).toBe(2);
  });

  it('refuses --until in the future, saying what now is', async () => {
    const now = new Date('2026-11-22T03:00:00Z');
    const r = await cli(['run', '--until', '2026-11-22T04:00:00Z'], nowhere, () => now);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(
      '--until 2026-11-22T04:00:00Z is in the future (now is 2026-11-22T03:00:00.000Z)',
    );
    const zoneless = await cli(['plan', '--until', '2026-11-22T01:00:00'], nowhere, () => now);
    expect(zoneless.code).toBe(2);
    expect(zoneless.stderr).toContain('use ISO 8601 with a zone');
  });

  it('K2_TEST_NOW stops the clock of a child process at its instant, says so, and refuses a non-instant', async () => {
    const env = childEnv({ ...nowhere, K2_TEST_NOW: '2026-11-22T03:00:00Z' });
    const r = await spawnCli(['run', '--until', '2026-11-22T04:00:00Z'], { env, cwd: tmpdir() });
    expect(r.code).toBe(2);
    expect(r.stderr.split('\n')).toEqual([
      testClockNotice('2026-11-22T03:00:00.000Z'),
      'k2-offload run: --until 2026-11-22T04:00:00Z is in the future (now is 2026-11-22T03:00:00.000Z); rows after now are not final yet: give an instant in the past, or leave --until out',
      '',
    ]);
    // Where stderr carries JSON lines, the notice is one of them.
    const json = await cli(['run', '--log-format', 'json', '--until', '2026-11-22T04:00:00Z'], {
      ...nowhere,
      K2_TEST_NOW: '2026-11-22T03:00:00Z',
    });
    expect(JSON.parse(json.stderr.split('\n')[0] ?? '')).toMatchObject({
      event: 'test-clock',
      now: '2026-11-22T03:00:00.000Z',
    });
    const garbage = await cli(['run'], { ...nowhere, K2_TEST_NOW: 'yesterday' });
    expect(garbage.code).toBe(2);
    expect(garbage.stderr).toBe(
      'k2-offload run: K2_TEST_NOW: "yesterday" is not an instant; use ISO 8601 with a zone, such as 2026-11-22T03:00:00Z\n',
    );
  });

  it('refuses a table config with a bad identifier, naming the field and the value', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'k2-cli-config-'));
    const path = join(dir, 'tables.json');
    const [first, ...rest] = DEFAULT_TABLES;
    await writeFile(path, JSON.stringify({ tables: [{ ...first, name: 'bronze-trades; DROP' }, ...rest] }));
    for (const command of ['run', 'plan', 'status', 'audit']) {
      const r = await cli([command, '--config', path], nowhere);
      expect(r.code, command).toBe(2);
      expect(r.stderr).toContain('tables.0.name: must be an identifier');
      expect(r.stderr).toContain('"bronze-trades; DROP"');
    }
  });

  it('guards watermark changes before touching anything', async () => {
    const reset = await cli(
      ['watermark', 'reset', '--table', 'silver_trades', '--to', '2026-11-21T00:00:00Z'],
      nowhere,
    );
    expect(reset.code).toBe(2);
    expect(reset.stderr).toContain('needs both --force and --reason');
    const noReason = await cli(
      ['watermark', 'reset', '--table', 'silver_trades', '--to', '2026-11-21T00:00:00Z', '--force'],
      nowhere,
    );
    expect(noReason.code).toBe(2);
    expect((await cli(['watermark'], nowhere)).stderr).toContain(
      'an action is required; use show, set, reset, rewind, release',
    );
    for (const action of ['rewind', 'release']) {
      const bare = await cli(['watermark', action, '--table', 'silver_trades'], nowhere);
      expect(bare.code, action).toBe(2);
      expect(bare.stderr, action).toContain('--reason is required');
    }
    expect((await cli(['watermark', 'set', '--to', '2026-11-21T00:00:00Z'], nowhere)).stderr).toContain(
      '--table is required',
    );
  });

  it('refuses to run the demo on named servers unless forced', async () => {
    const r = await cli(['demo', '--rows', '10'], nowhere);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(
      'demo runs on the embedded components only, but CLICKHOUSE_URL, DATABASE_URL are set',
    );
  });

  it('with --json, reports an error as one JSON document too, and never a stack trace', async () => {
    const r = await cli(['plan', '--tables', 'nope', '--json'], nowhere);
    expect(r.code).toBe(2);
    expect(r.json()).toMatchObject({ ok: false, exitCode: 2, error: { name: 'InputError' } });
    expect(r.stderr).not.toMatch(/^\s+at /m);
  });

  it("prints its version, and one command's help through `help COMMAND`", async () => {
    const { version } = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8'));
    for (const flag of ['--version', '-V']) {
      const r = await cli([flag], nowhere);
      expect(r.code).toBe(0);
      expect(r.stdout).toBe(`k2-offload ${version}\n`);
    }
    const help = await cli(['help', 'status'], nowhere);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^Usage: k2-offload status/);
  });

  it('suggests the option meant, and takes a negative number as the value it is', async () => {
    const table = await cli(['run', '--table', 'x'], nowhere);
    expect(table.code).toBe(2);
    expect(table.stderr).toContain("Unknown option '--table' (did you mean --tables?)");
    const hours = await cli(['audit', '--hours', '-3'], nowhere);
    expect(hours.code).toBe(2);
    expect(hours.stderr).toContain('--hours "-3": must be a whole number from 1');
  });

  it('reads the table config from K2_CONFIG, and names the line and column of a JSON error', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'k2-cli-config-'));
    const path = join(dir, 'tables.json');
    await writeFile(path, '{\n  "tables": [\n    {"name": "x",}\n  ]\n}\n');
    const r = await cli(['plan'], { ...nowhere, K2_CONFIG: path });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`table config ${path} is not valid JSON:`);
    expect(r.stderr).toContain('at line 3, column 18');
  });

  it('names a malformed variable, its value and an example of a good one', async () => {
    const url = await cli(['status'], { ...nowhere, CLICKHOUSE_URL: 'localhost' });
    expect(url.code).toBe(2);
    expect(url.stderr).toBe(
      'k2-offload status: environment variable CLICKHOUSE_URL "localhost": Invalid URL; for example CLICKHOUSE_URL=http://localhost:8123 (the HTTP interface, with its scheme and port)\n',
    );
    const secret = await cli(['status'], { ...nowhere, CLICKHOUSE_URL: '//k2:hunter2@db:8123' });
    expect(secret.stderr).toContain('"//k2:***@db:8123"');
    expect(secret.stderr).not.toContain('hunter2');
    const name = await cli(['status'], { ...nowhere, K2_CATALOG_NAME: 'my catalog' });
    expect(name.code).toBe(2);
    expect(name.stderr).toContain('K2_CATALOG_NAME "my catalog": must be letters, digits, _ or -');
  });

  it('refuses an unknown log format before opening anything', async () => {
    const r = await cli(['run'], { ...nowhere, K2_LOG: 'xml' });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('log format "xml" (--log-format or K2_LOG): use text or json');
  });

  it('refuses a candle watermark inside a candle, naming the interval', async () => {
    const argv = ['watermark', 'set', '--table', 'ohlcv_5m', '--force', '--reason', 'INC-9'];
    const inside = await cli([...argv, '--to', '2026-11-21T00:02:00Z'], nowhere);
    expect(inside.code).toBe(2);
    expect(inside.stderr).toContain(
      'ohlcv_5m holds 300-second candles, and a cursor inside a candle would split it',
    );
    // On a boundary it gets past the check (and then fails to reach the unreachable servers: exit 1).
    expect((await cli([...argv, '--to', '2026-11-21T00:05:00Z'], nowhere)).code).toBe(1);
  });
});
