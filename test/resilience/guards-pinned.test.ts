import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.ts';
import { LeaseError, WatermarkConflictError } from '../../src/errors.ts';
import { loadTable } from '../../src/iceberg/table.ts';
import { commitBatch } from '../../src/pipeline/commit-batch.ts';
import { commitWatermark } from '../../src/pipeline/commit-watermark.ts';
import { runCycle } from '../../src/pipeline/local-runner.ts';
import { stageBatch } from '../../src/pipeline/stage-batch.ts';
import { useOneTableRig } from './fed-rig.ts';
import { CYCLE_MS, gatedCatalog } from './harness.ts';
import { verifyAll } from './verify.ts';

/**
 * The edges of the exactly-once guards that the main guard suite does not reach: a lease released
 * rather than taken over, a takeover that committed a shorter window than the stalled holder's, and a
 * retried stage of a batch Iceberg already holds. Each scenario fails when its edge of the guard is
 * taken out (checked by changing the guard by hand, see docs/mutation.md).
 */
describe('exactly-once guards, pinned at their edges', () => {
  const {
    table: TABLE,
    config,
    target,
    deps,
    later,
    planOne,
    snapshotsOf,
    currentMetadata,
  } = useOneTableRig({ name: 'guards-pinned', seed: 77 });
  const small = parseConfig(
    { tables: config.tables.map((t) => ({ ...t, maxWindowSeconds: 300 })) },
    'five-minute windows',
  );
  /** Every file under the table's folder with its size and modification time. */
  const tableFiles = async () => {
    const { metadata } = await loadTable(deps(), target);
    const out: string[] = [];
    for await (const f of deps().store.list(`${metadata.location}/`))
      out.push(`${f.uri} ${f.size} ${f.lastModified.getTime()}`);
    return out.sort();
  };

  it('a lease given back (not taken by anyone yet) no longer lets its holder commit', async () => {
    await later(CYCLE_MS);
    const [batch] = await planOne();
    if (!batch) throw new Error('expected a batch to plan');
    const staged = await stageBatch(deps(), batch);
    expect(staged.rows).toBeGreaterThan(0);
    // The cycle gave the table back (a failed step, an operator), and a late retry of its commit arrives.
    await deps().watermarks.releaseLease(TABLE, batch.leaseToken);
    const before = await currentMetadata();
    await expect(commitBatch(deps(), { batch, staged })).rejects.toBeInstanceOf(LeaseError);
    expect(await currentMetadata()).toBe(before);
    expect(await snapshotsOf(batch.batchId)).toEqual([]);

    await later();
    await runCycle(deps(), {});
    expect((await verifyAll(deps())).problems).toEqual([]);
  });

  it('a stalled holder is refused after a takeover committed a shorter window from the same start, no row twice', async () => {
    await later(CYCLE_MS);
    const [slow] = await planOne();
    if (!slow) throw new Error('expected a batch to plan');
    const staged = await stageBatch(deps(), slow);
    // The slow holder passes the lease check, then its catalog swap waits while the table is taken over.
    const { catalog: gated, reached: atSwap, release } = gatedCatalog(deps().catalog);
    const outcome = commitBatch(deps({ catalog: gated }), { batch: slow, staged }).then(
      () => 'committed',
      (error: unknown) => error,
    );
    await atSwap;
    await later();
    // The takeover plans five-minute windows and commits only its first: it ends inside the slow window.
    const [first] = await planOne({}, { config: small });
    if (!first) throw new Error('expected the takeover to plan a batch');
    expect(first.windowStart).toBe(slow.windowStart);
    expect(Date.parse(first.windowEnd)).toBeLessThan(Date.parse(slow.windowEnd));
    const firstStaged = await stageBatch(deps({ config: small }), first);
    const committed = await commitBatch(deps({ config: small }), { batch: first, staged: firstStaged });
    await commitWatermark(deps({ config: small }), {
      batch: { ...first, lastOfTable: true },
      staged: firstStaged,
      committed,
    });
    release();
    expect(await outcome).toBeInstanceOf(WatermarkConflictError);
    expect(await snapshotsOf(slow.batchId)).toEqual([]);

    await later();
    await runCycle(deps(), {});
    expect((await verifyAll(deps())).problems).toEqual([]);
  });

  it('a batch Iceberg already holds is not staged again: no file of the table is written or rewritten', async () => {
    await later(CYCLE_MS);
    const [batch] = await planOne();
    if (!batch) throw new Error('expected a batch to plan');
    const staged = await stageBatch(deps(), batch);
    const committed = await commitBatch(deps(), { batch, staged });
    expect(committed.status).toBe('committed');
    const files = await tableFiles();
    // A retried stage step (a redriven execution): the batch's files are the table's data files now.
    const again = await stageBatch(deps(), batch);
    // Its rows per hour come from the marker, so the hourly ledger still learns the batch.
    expect(again).toEqual({ rows: staged.rows, files: [], durationMs: 0, hours: staged.hours });
    expect(await tableFiles()).toEqual(files);

    await commitWatermark(deps(), { batch, staged: again, committed });
    const ledger = await deps().watermarks.ledger(TABLE, { from: batch.windowStart, to: batch.windowEnd });
    expect(ledger.find((e) => e.batchId === batch.batchId)?.hours).toEqual(staged.hours);
    expect((await verifyAll(deps())).problems).toEqual([]);
  });

  it('a window with no rows commits nothing to Iceberg: no snapshot, no new metadata', async () => {
    await later(CYCLE_MS);
    const [batch] = await planOne();
    if (!batch) throw new Error('expected a batch to plan');
    const before = await currentMetadata();
    // What staging returns for a window ClickHouse holds no rows in.
    const empty = { rows: 0, files: [], durationMs: 0 };
    const committed = await commitBatch(deps(), { batch, staged: empty });
    expect(committed).toEqual({ status: 'empty', rows: 0 });
    expect(await currentMetadata()).toBe(before);
    expect(await snapshotsOf(batch.batchId)).toEqual([]);
    await deps().watermarks.releaseLease(TABLE, batch.leaseToken);

    await later();
    await runCycle(deps(), {});
    expect((await verifyAll(deps())).problems).toEqual([]);
  });
});
