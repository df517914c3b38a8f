import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.ts';
import { LeaseError, MarkerMissingError, WatermarkConflictError } from '../../src/errors.ts';
import { commitBatch } from '../../src/pipeline/commit-batch.ts';
import { commitWatermark } from '../../src/pipeline/commit-watermark.ts';
import type { BatchSpec } from '../../src/pipeline/events.ts';
import { crashAt, InjectedCrash } from '../../src/pipeline/faults.ts';
import { runCycle } from '../../src/pipeline/local-runner.ts';
import { planCycle } from '../../src/pipeline/plan-cycle.ts';
import { stageBatch } from '../../src/pipeline/stage-batch.ts';
import { useOneTableRig } from './fed-rig.ts';
import { CYCLE_MS, gatedCatalog } from './harness.ts';
import { verifyAll } from './verify.ts';

/**
 * One test per exactly-once guard of DESIGN.md section 3, each built so that it fails when that guard
 * is taken out (checked by disabling each guard in turn): the steps are driven one by one, the way a
 * slow, retried or out-of-order execution would drive them. One table keeps each scenario small.
 */
describe('exactly-once guards', () => {
  const {
    table: TABLE,
    config,
    deps,
    later,
    planOne,
    snapshotsOf,
    currentMetadata,
  } = useOneTableRig({
    name: 'guards',
    seed: 51,
  });
  const cursor = async () => (await deps().watermarks.get(TABLE)).cursor;

  it('lease fencing: a holder whose lease was taken over cannot commit, the new holder can', async () => {
    await later(CYCLE_MS);
    const [stale] = await planOne();
    const staged = await stageBatch(deps(), stale);
    expect(staged.rows).toBeGreaterThan(0);
    // The holder stalls past its lease; the next cycle takes the table over.
    await later();
    const [fresh] = await planOne();
    const before = await currentMetadata();
    await expect(commitBatch(deps(), { batch: stale, staged })).rejects.toBeInstanceOf(LeaseError);
    expect(await currentMetadata()).toBe(before);

    const freshStaged = await stageBatch(deps(), fresh as BatchSpec);
    const committed = await commitBatch(deps(), { batch: fresh, staged: freshStaged });
    await commitWatermark(deps(), { batch: fresh, staged: freshStaged, committed });
    expect((await verifyAll(deps())).problems).toEqual([]);
  });

  it('overlap guard: a holder that passed the fence but lost the race to a newer window is refused, no row twice', async () => {
    await later(CYCLE_MS);
    const [slow] = await planOne();
    const staged = await stageBatch(deps(), slow as BatchSpec);
    // The slow holder's catalog swap waits while the table is taken over and a longer window committed.
    const { catalog: gated, reached: atSwap, release } = gatedCatalog(deps().catalog);
    const slowCommit = commitBatch(deps({ catalog: gated }), { batch: slow, staged });
    const outcome = slowCommit.then(
      () => 'committed',
      (error: unknown) => error,
    );
    await atSwap;
    await later();
    const takeover = await runCycle(deps(), {});
    expect(takeover.passes.flatMap((p) => p.tables).map((t) => t.status)).toEqual(['succeeded']);
    release();
    expect(await outcome).toBeInstanceOf(WatermarkConflictError);
    expect(await snapshotsOf((slow as BatchSpec).batchId)).toEqual([]);
    expect((await verifyAll(deps())).problems).toEqual([]);
  });

  it('batch-id idempotence: a commit retried after its answer was lost finds its snapshot, the cycle goes on', async () => {
    await later(CYCLE_MS);
    const faults = crashAt('lost-commit-response', { table: TABLE });
    const cycle = await runCycle(deps({ faults }), {});
    expect(faults.fired).toBe(1);
    expect(cycle.passes.flatMap((p) => p.tables).map((t) => t.status)).toEqual(['succeeded']);
    const last = (await deps().watermarks.get(TABLE)).lastBatchId as string;
    expect(await snapshotsOf(last)).toHaveLength(1);

    // The same commit event replayed once more (a redriven execution): the same snapshot, nothing new.
    await later(CYCLE_MS);
    const [batch] = await planOne();
    const staged = await stageBatch(deps(), batch as BatchSpec);
    const first = await commitBatch(deps(), { batch, staged });
    const location = await currentMetadata();
    const replay = await commitBatch(deps(), { batch, staged });
    expect(replay).toEqual({ ...first, status: 'already-committed' });
    expect(await currentMetadata()).toBe(location);
    await commitWatermark(deps(), { batch, staged, committed: replay });
    expect((await verifyAll(deps())).problems).toEqual([]);
  });

  it('watermark compare-and-set: a later window cannot move the cursor before the earlier one, nor move it back', async () => {
    await later(CYCLE_MS);
    // Windows of 5 minutes: the 15-minute backlog is planned as three batches under one lease.
    const small = parseConfig(
      { tables: config.tables.map((t) => ({ ...t, maxWindowSeconds: 300 })) },
      'small windows',
    );
    const plan = await planCycle(deps({ config: small }), { tables: [TABLE] });
    const batches = plan.layers[0]?.tables[0]?.batches ?? [];
    expect(batches.length).toBeGreaterThanOrEqual(2);
    const [one, two] = batches as [BatchSpec, BatchSpec];
    const s1 = await stageBatch(deps(), one);
    const c1 = await commitBatch(deps(), { batch: one, staged: s1 });
    const s2 = await stageBatch(deps(), two);
    const c2 = await commitBatch(deps(), { batch: two, staged: s2 });
    const start = await cursor();
    expect(start).toBe(one.windowStart);

    // Out of order (a redriven or misrouted step): refused, the cursor does not jump.
    await expect(commitWatermark(deps(), { batch: two, staged: s2, committed: c2 })).rejects.toBeInstanceOf(
      WatermarkConflictError,
    );
    expect(await cursor()).toBe(start);
    await commitWatermark(deps(), { batch: { ...one, lastOfTable: false }, staged: s1, committed: c1 });
    await commitWatermark(deps(), { batch: { ...two, lastOfTable: false }, staged: s2, committed: c2 });
    expect(await cursor()).toBe(two.windowEnd);
    // A late replay of the first step: idempotent, and the cursor never moves back.
    expect((await commitWatermark(deps(), { batch: one, staged: s1, committed: c1 })).result).toBe(
      'replayed',
    );
    expect(await cursor()).toBe(two.windowEnd);
    await later();
    await runCycle(deps(), {});
    expect((await verifyAll(deps())).problems).toEqual([]);
  });

  it('marker verification: the watermark does not move for a batch Iceberg does not hold', async () => {
    await later(CYCLE_MS);
    const [batch] = await planOne();
    const staged = await stageBatch(deps(), batch as BatchSpec);
    const start = await cursor();
    // The commit job "succeeded" without committing (an EMR job that exited 0, a lost step): no marker.
    await expect(commitWatermark(deps(), { batch, staged })).rejects.toBeInstanceOf(MarkerMissingError);
    expect(await cursor()).toBe(start);
    // Committed, but not the rows that were staged: refused too.
    const committed = await commitBatch(deps(), { batch, staged });
    await expect(
      commitWatermark(deps(), { batch, staged: { ...staged, rows: staged.rows + 1 }, committed }),
    ).rejects.toBeInstanceOf(MarkerMissingError);
    expect(await cursor()).toBe(start);
    await later();
    await runCycle(deps(), {});
    expect((await verifyAll(deps())).problems).toEqual([]);
  });

  it('reconcile: after a crash between the Iceberg commit and the watermark, the next cycle adopts the marker', async () => {
    await later(CYCLE_MS);
    const dead = runCycle(deps({ faults: crashAt('after-iceberg-commit', { table: TABLE }) }), {});
    await expect(dead).rejects.toBeInstanceOf(InjectedCrash);
    // Later, with more rows: the next window would start at the stale cursor and overlap the commit.
    await later();
    const before = await cursor();
    const events: Record<string, unknown>[] = [];
    const next = await runCycle(deps({ log: (e) => events.push(e as Record<string, unknown>) }), {});
    expect(next.passes.flatMap((p) => p.tables).map((t) => t.status)).toEqual(['succeeded']);
    const history = await deps().watermarks.history({ table: TABLE, limit: 5 });
    expect(history.map((r) => r.outcome)).toContain('reconciled');
    // The log says which table was reconciled, from where to where.
    const reconciled = history.find((r) => r.outcome === 'reconciled');
    expect(events.filter((e) => e.event === 'reconciled')).toEqual([
      { event: 'reconciled', table: TABLE, from: before, to: reconciled?.windowEnd },
    ]);
    expect((await verifyAll(deps())).problems).toEqual([]);
  });
});
