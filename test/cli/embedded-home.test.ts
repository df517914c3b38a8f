import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { DemoReport } from '../../src/cli/commands/demo.ts';
import { testClockNotice } from '../../src/cli/context.ts';
import type { HealthReport } from '../../src/pipeline/health.ts';
import { embeddedDataDirs } from '../../src/postgres/embedded.ts';
import { lockHome } from '../../src/runtime/home.ts';
import { TEST_NOW } from '../support/clock.ts';
import { childEnv, spawnCli } from './support.ts';

/**
 * The embedded setup as a new user meets it: a clone in a folder only its owner may enter (root's home
 * is mode 700), commands run from a subfolder or from elsewhere, two commands at once.
 */
describe('k2-offload on its embedded state', () => {
  let base: string;
  let project: string;
  // No servers named: the embedded ClickHouse and Postgres, under the project's .k2.
  const env = childEnv({});

  beforeAll(async () => {
    base = await mkdtemp(join(tmpdir(), 'k2-home-')); // mode 700: only its owner enters
    project = join(base, 'project');
    await mkdir(join(project, 'docs'), { recursive: true });
  });
  afterAll(async () => {
    // As root the server's data lives outside the folder (linked from it): remove both.
    for (const dir of await embeddedDataDirs(join(project, '.k2', 'postgres')))
      await rm(dir, { recursive: true, force: true });
    await rm(base, { recursive: true, force: true });
  });

  it('runs the demo in a folder only its owner can enter, and status from a subfolder finds its state', async () => {
    // The demo's rows and the status after it, at one instant.
    const at = { ...env, K2_TEST_NOW: TEST_NOW.toISOString() };
    const demo = await spawnCli(['demo', '--rows', '2000', '--hours', '1', '--json'], {
      env: at,
      cwd: project,
    });
    expect(demo.stderr).toBe(`${testClockNotice(TEST_NOW.toISOString())}\n`);
    expect(demo.code).toBe(0);
    expect((demo.json() as DemoReport).auditOk).toBe(true);
    // The engines are free again for the next command.
    expect(existsSync(join(project, '.k2', 'in-use.json'))).toBe(false);

    const status = await spawnCli(['status', '--json'], { env: at, cwd: join(project, 'docs') });
    const report = status.json() as HealthReport;
    expect(report.tables.find((t) => t.table === 'bronze_trades_binance')?.lastSuccessAt).not.toBeNull();
    // Nothing was created in the subfolder: the state is the project's.
    expect(await readdir(join(project, 'docs'))).toEqual([]);
  }, 300_000);

  it('refuses, creating nothing, where no folder above holds any state', async () => {
    const elsewhere = join(base, 'elsewhere');
    await mkdir(elsewhere);
    const r = await spawnCli(['status'], { env, cwd: elsewhere });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`no k2-offload state in ${elsewhere} or any folder above it (no .k2 folder)`);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(await readdir(elsewhere)).toEqual([]);
  });
});

describe('one command at a time on the embedded engines', () => {
  it('refuses a second writer naming the holder, lets a reader wait, and takes over from a dead holder', async () => {
    const home = await mkdtemp(join(tmpdir(), 'k2-lock-'));
    const holder = spawn('sleep', ['30']);
    const pid = holder.pid as number;
    await writeFile(
      join(home, 'in-use.json'),
      JSON.stringify({ pid, host: hostname(), command: 'run', startedAt: '2026-12-04T10:00:00.000Z' }),
    );
    await expect(lockHome(home, 'catch-up', { wait: false })).rejects.toThrow(
      `are in use by k2-offload run (pid ${pid} on ${hostname()}, since 2026-12-04T10:00:00.000Z); embedded mode runs one command at a time: wait for it to finish`,
    );
    const told: string[] = [];
    const reader = lockHome(home, 'status', { wait: true, pollMs: 20, onWait: (m) => told.push(m) });
    // Told once when it starts waiting (the bound is against a hang), and not again while it polls.
    await vi.waitFor(() => expect(told).toHaveLength(1), { timeout: 60_000, interval: 20 });
    await new Promise((r) => setTimeout(r, 200));
    expect(told).toHaveLength(1);
    expect(told[0]).toContain('waiting for it to finish');
    // The holder dies without cleaning up (kill -9): the waiting reader takes the engines.
    holder.kill('SIGKILL');
    const release = await reader;
    expect(existsSync(join(home, 'in-use.json'))).toBe(true);
    await release();
    expect(existsSync(join(home, 'in-use.json'))).toBe(false);
    await rm(home, { recursive: true, force: true });
  });
});
