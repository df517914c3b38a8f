import { type ChildProcess, spawn } from 'node:child_process';
import { cp, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderHealth } from '../../src/cli/commands/status.ts';
import { defaultConfig, parseConfig } from '../../src/config/load.ts';
import { collectHealth } from '../../src/pipeline/health.ts';
import { BIN, childEnv, spawnCli } from '../cli/support.ts';
import { useRig } from './fed-rig.ts';
import { fakeClock, LEASE_SECONDS, MINUTE, pastStart, tradeFeed } from './harness.ts';
import { verifyAll } from './verify.ts';

/**
 * Leases a CLI command leaves behind. Ctrl-C or SIGTERM gives them back; a killed run's lease shows with
 * its holder (host, pid) and turns health red once stale; the audited `watermark release` frees it, but
 * never while its holder runs on this host. Real processes: the CLI as users run it, on a copy of the
 * hot tier (a chDB data dir belongs to one process), against the rig's Postgres and warehouse.
 */
const TABLE = 'bronze_trades_binance';
const config = parseConfig({ tables: defaultConfig().tables.filter((t) => t.name === TABLE) }, 'one table');

describe('lease hygiene', () => {
  // The rig's clock is what its store takes for Postgres's: the test moves it past a lease's expiry.
  const clock = fakeClock(pastStart(3));
  // Every CLI process runs an hour after the trades (K2_TEST_NOW): a backlog of five windows, enough to
  // be caught holding the lease (it is then held still by the row lock), small enough to finish soon.
  const childNow = clock.now().getTime() + 3_600_000;
  const setup = useRig({ name: 'lease-hygiene', clock, config });
  let lock: pg.Client;
  const env = (home: string) =>
    childEnv({
      DATABASE_URL: setup.databaseUrl,
      K2_HOME: join(setup.rig.dir, home),
      WAREHOUSE: join(setup.rig.dir, 'warehouse'),
      K2_CONFIG: join(setup.rig.dir, 'tables.json'),
      K2_TEST_NOW: new Date(childNow).toISOString(),
    });
  const args = (...a: string[]) => [...a, '--config', join(setup.rig.dir, 'tables.json')];
  /** `k2-offload catch-up` in its own process, on a backlog of several windows. */
  const catchUp = (): { child: ChildProcess; exit: Promise<{ code: number | null; stderr: string }> } => {
    const child = spawn(process.execPath, [BIN, ...args('catch-up', '--table', TABLE)], {
      cwd: setup.rig.dir,
      env: env('child'),
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr?.on('data', (c: Buffer) => {
      stderr += c.toString();
    });
    return { child, exit: new Promise((ok) => child.on('close', (code) => ok({ code, stderr }))) };
  };
  /**
   * Waits until `pid` holds the table's lease, then keeps the watermark row locked: the holder's next
   * watermark write waits, so it cannot finish (and give the lease back by finishing) meanwhile.
   */
  const lockWhileHeldBy = async (pid: number) => {
    for (const deadline = Date.now() + 120_000; Date.now() < deadline; ) {
      await lock.query('BEGIN');
      const { rows } = await lock.query(
        `SELECT lease_pid FROM k2_offload.watermarks WHERE table_name = $1 AND lease_holder IS NOT NULL FOR UPDATE`,
        [TABLE],
      );
      if (rows[0]?.lease_pid === pid) return;
      await lock.query('COMMIT');
      await new Promise((ok) => setTimeout(ok, 20));
    }
    throw new Error(`process ${pid} never held the lease of ${TABLE}`);
  };
  /** Until the process has exited, or one of its statements waits on the row lock we hold. */
  const exitedOrWaiting = async (exit: Promise<unknown>) => {
    let done = false;
    void exit.then(() => {
      done = true;
    });
    const watcher = new pg.Client({ connectionString: setup.databaseUrl });
    await watcher.connect();
    try {
      for (const deadline = Date.now() + 30_000; !done && Date.now() < deadline; ) {
        const { rows } = await watcher.query(
          `SELECT count(*)::int AS n FROM pg_stat_activity
           WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%lease_pid = $2%'`,
        );
        if (rows[0].n > 0) return;
        await new Promise((ok) => setTimeout(ok, 20));
      }
    } finally {
      await watcher.end();
    }
  };
  const lease = async () => (await setup.rig.deps().watermarks.get(TABLE)).lease;

  beforeAll(async () => {
    const feed = tradeFeed(setup.rig.clickhouse, clock, {
      from: clock.now().getTime() - 4 * 3_600_000,
      seed: 31,
      rowsPerHour: 1500,
    });
    await feed();
    await writeFile(join(setup.rig.dir, 'tables.json'), JSON.stringify({ tables: config.tables }));
    await mkdir(join(setup.rig.dir, 'child'), { recursive: true });
    await cp(join(setup.rig.dir, 'chdb'), join(setup.rig.dir, 'child', 'chdb'), { recursive: true });
    lock = new pg.Client({ connectionString: setup.databaseUrl });
    await lock.connect();
  });
  afterAll(async () => {
    await lock?.end();
  });

  it('SIGTERM of a catch-up gives its lease back as it exits', async () => {
    const run = catchUp();
    await lockWhileHeldBy(run.child.pid as number);
    run.child.kill('SIGTERM');
    await exitedOrWaiting(run.exit);
    await lock.query('COMMIT');
    const { code, stderr } = await run.exit;
    expect(code, stderr).toBe(143);
    expect(stderr).toContain('SIGTERM');
    expect(await lease()).toBeNull();
  });

  // Two steps of one story, each its own test: a run killed holding its lease, then the operator's release.
  let killedPid = 0;
  it("a killed run's lease names its holder and turns health red once stale; release is refused while it lives", async () => {
    const run = catchUp();
    const pid = run.child.pid as number;
    await lockWhileHeldBy(pid);
    const alive = await spawnCli(args('watermark', 'release', '--table', TABLE, '--reason', 'stuck?'), {
      env: env('ops'),
      cwd: setup.rig.dir,
    });
    expect(alive.code).toBe(1);
    expect(alive.stderr).toContain(`is alive on this host`);
    run.child.kill('SIGKILL');
    await run.exit;
    await lock.query('COMMIT');

    const left = await lease();
    expect(left).toMatchObject({ pid, host: expect.any(String), startedAt: expect.any(String) });
    // Past its expiry by Postgres's clock, never released: stale.
    clock.set(Date.parse(left?.expiresAt as string) + MINUTE);
    const red = await collectHealth(setup.rig.deps());
    expect(red.healthy).toBe(false);
    expect(red.problems.filter((p) => p.severity === 'critical').map((p) => p.code)).toContain('lease-stale');
    const text = renderHealth(red);
    expect(text).toContain(`pid ${pid}`);
    expect(text).toContain('STALE');
    killedPid = pid;
  });

  it('once its holder is dead, the audited release frees the lease and the next catch-up finishes', async () => {
    const pid = killedPid;
    expect(pid).toBeGreaterThan(0);
    const released = await spawnCli(
      args(
        'watermark',
        'release',
        '--table',
        TABLE,
        '--reason',
        'INC-5 killed catch-up',
        '--actor',
        'oncall',
      ),
      { env: env('ops'), cwd: setup.rig.dir },
    );
    expect(released.code, released.stderr).toBe(0);
    expect(await lease()).toBeNull();
    const [audit] = await setup.rig.deps().watermarks.audit({ table: TABLE, limit: 1 });
    expect(audit).toMatchObject({ action: 'release', actor: 'oncall' });
    expect(audit?.reason).toContain(`pid ${pid}`);

    const finished = await spawnCli(args('catch-up', '--table', TABLE), {
      env: env('child'),
      cwd: setup.rig.dir,
    });
    expect(finished.code, finished.stderr).toBe(0);
    expect((await verifyAll(setup.rig.deps())).problems).toEqual([]);
    clock.set(childNow + LEASE_SECONDS * 1000 + MINUTE);
    const green = await collectHealth(setup.rig.deps());
    expect(green.problems.filter((p) => p.severity === 'critical')).toEqual([]);
    expect(green.healthy).toBe(true);
  });
});
