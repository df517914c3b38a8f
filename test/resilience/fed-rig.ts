import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import type { OffloadConfig } from '../../src/config/schema.ts';
import { freshDatabase } from '../support/pg.ts';
import { type FakeClock, fakeClock, openRig, pastStart, type Rig, tradeFeed } from './harness.ts';

export type RigHolder = { rig: Rig; databaseUrl: string };

/**
 * A rig on a fresh database and temp dir, opened by beforeAll and removed by afterAll. The returned
 * object is filled in by beforeAll; a suite's own beforeAll, registered after, can use it.
 */
export function useRig(options: { name: string; clock: FakeClock; config?: OffloadConfig }): RigHolder {
  const holder = {} as RigHolder;
  let db: Awaited<ReturnType<typeof freshDatabase>> | undefined;
  beforeAll(async () => {
    db = await freshDatabase();
    holder.databaseUrl = db.url;
    holder.rig = await openRig({
      dir: await mkdtemp(join(tmpdir(), `k2-${options.name}-`)),
      databaseUrl: db.url,
      clock: options.clock,
      ...(options.config ? { config: options.config } : {}),
    });
  });
  afterAll(async () => {
    await holder.rig?.close();
    await db?.drop();
    if (holder.rig) await rm(holder.rig.dir, { recursive: true, force: true });
  });
  return holder;
}

export type FedRig = { clock: FakeClock; rig: Rig; feed: ReturnType<typeof tradeFeed>; databaseUrl: string };

/**
 * The common setup of a resilience suite, registered as its beforeAll/afterAll: a fake clock days in
 * the past, a rig on a fresh database, and `hours` of trades (some late) fed before the first cycle.
 * The returned object is filled in by beforeAll.
 */
export function useFedRig(options: {
  name: string;
  seed: number;
  rowsPerHour: number;
  hours: number;
}): FedRig {
  const clock = fakeClock(pastStart(3));
  const fed = { clock } as FedRig;
  const holder = useRig({ name: options.name, clock });
  beforeAll(async () => {
    fed.rig = holder.rig;
    fed.databaseUrl = holder.databaseUrl;
    fed.feed = tradeFeed(fed.rig.clickhouse, clock, {
      from: clock.now().getTime() - options.hours * 3_600_000,
      seed: options.seed,
      rowsPerHour: options.rowsPerHour,
    });
    await fed.feed({ lateFraction: 0.05 });
  });
  return fed;
}
