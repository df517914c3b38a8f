import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshDatabase } from '../support/pg.ts';
import { type ChildPlan, type ChildRun, CRASH_EXIT_CODE, runChild, startTogether } from './children.ts';
import { LEASE_SECONDS, MINUTE, pastStart } from './harness.ts';

/**
 * The same protocol across real process deaths: a pipeline process exits at a fault point with nothing
 * cleaned up (connections, leases, half-written files left as they are), and a new process, started
 * later like the next scheduled invocation, repairs it. Then two processes run a cycle at the same
 * instant on the same Postgres and warehouse (each with its own copy of the hot tier, since a chDB data
 * dir belongs to one process): the leases split the tables between them, nothing is written twice.
 * Only the children touch ClickHouse; this process only starts them and reads what they print.
 */
const T0 = pastStart(3);
const H = 3_600_000;
const EXPIRED = LEASE_SECONDS * 1000 + MINUTE;
const T1 = T0 + 30 * MINUTE;
const T2 = T1 + EXPIRED;
const T3 = T2 + 30 * MINUTE;
const T4 = T3 + EXPIRED;
const T5 = T4 + 30 * MINUTE;
const feed = (from: number, seed: number, lateFraction = 0) => ({
  from,
  rowsPerHour: 2_000,
  seed,
  lateFraction,
});

describe('crashes and overlap across processes', () => {
  let db: Awaited<ReturnType<typeof freshDatabase>>;
  let dir: string;
  const plan = (steps: ChildPlan['steps'], extra: Partial<ChildPlan> = {}): ChildPlan => ({
    dir,
    databaseUrl: db.url,
    steps,
    ...extra,
  });
  beforeAll(async () => {
    db = await freshDatabase();
    dir = await mkdtemp(join(tmpdir(), 'k2-procs-'));
  });
  afterAll(async () => {
    await db?.drop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('a process dying after the data files, and one dying during the watermark, are repaired by the next process', async () => {
    const first = await runChild(
      plan([
        { at: T0, feed: feed(T0 - 4 * H, 21, 0.05), cycle: {} },
        {
          at: T1,
          feed: feed(T0, 22),
          cycle: { crash: { point: 'after-data-files', table: 'bronze_trades_kraken' } },
        },
      ]),
    );
    expect(first.code, first.stderr).toBe(CRASH_EXIT_CODE);
    expect(first.lines.at(-1)).toMatchObject({ crashed: 'after-data-files', table: 'bronze_trades_kraken' });

    const second = await runChild(
      plan([
        { at: T2, feed: feed(T1, 23), cycle: {}, verify: true },
        {
          at: T3,
          feed: feed(T2, 24),
          cycle: { crash: { point: 'during-watermark', table: 'silver_trades' } },
        },
      ]),
    );
    expect(second.code, second.stderr).toBe(CRASH_EXIT_CODE);
    const repaired = second.lines[0];
    expect(repaired?.failed).toEqual([]);
    expect(repaired?.passes?.flatMap((p) => p.skipped).filter((s) => s.reason === 'leased')).toEqual([]);
    expect(repaired?.problems).toEqual([]);
    expect(second.lines.at(-1)).toMatchObject({ crashed: 'during-watermark', table: 'silver_trades' });

    const third = await runChild(plan([{ at: T4, feed: feed(T3, 25), cycle: {}, verify: true }]));
    expect(third.code, third.stderr).toBe(0);
    expect(third.lines[0]?.failed).toEqual([]);
    expect(third.lines[0]?.problems).toEqual([]);
  });

  it('two processes starting a cycle at the same instant: leases split the work, no row twice', async () => {
    // The hot tier gets its new rows in one process; the second process gets a copy of that data dir.
    const seeded = await runChild(plan([{ at: T5, feed: feed(T4, 26) }]));
    expect(seeded.code, seeded.stderr).toBe(0);
    await cp(join(dir, 'chdb'), join(dir, 'chdb-b'), { recursive: true });

    const barrier = (name: string) => ({ ready: join(dir, `ready-${name}`), go: join(dir, 'go') });
    const [a, b] = (await startTogether(
      [
        plan([{ at: T5, cycle: {} }], { barrier: barrier('a') }),
        plan([{ at: T5, cycle: {} }], { barrier: barrier('b'), chdb: 'chdb-b' }),
      ],
      join(dir, 'go'),
    )) as [ChildRun, ChildRun];
    expect(a.code, a.stderr).toBe(0);
    expect(b.code, b.stderr).toBe(0);
    expect([...(a.lines[0]?.failed ?? []), ...(b.lines[0]?.failed ?? [])]).toEqual([]);
    const leased = [a, b].flatMap((r) =>
      (r.lines[0]?.passes ?? []).flatMap((p) => p.skipped.filter((s) => s.reason === 'leased')),
    );
    // Whichever planned second found tables the other held, and said so instead of waiting.
    expect(leased.length).toBeGreaterThan(0);

    const check = await runChild(plan([{ at: T5, verify: true }]));
    expect(check.code, check.stderr).toBe(0);
    expect(check.lines[0]?.problems).toEqual([]);
  });
});
