import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { COMMANDS } from '../../src/cli/main.ts';
import { DEFAULT_TABLES } from '../../src/config/defaults.ts';
import { cli } from './support.ts';

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
    expect(option.stderr).toBe("k2-offload run: Unknown option '--tabels'; see k2-offload run --help\n");
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
      'an action is required; use show, set or reset',
    );
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
});
