import { utimes } from 'node:fs/promises';
import type { ClickHouseClient } from '@clickhouse/client';
import { beforeAll, describe, expect, it } from 'vitest';
import { defaultConfig, parseConfig } from '../../src/config/load.ts';
import { LeaseError, StagingMismatchError } from '../../src/errors.ts';
import { localPath } from '../../src/iceberg/local-store.ts';
import { DEFAULT_ORPHAN_GRACE_MS, removeOrphanFiles } from '../../src/iceberg/maintenance/orphans.ts';
import { ManifestReader } from '../../src/iceberg/maintenance/reachable.ts';
import { loadTable } from '../../src/iceberg/table.ts';
import { commitBatch } from '../../src/pipeline/commit-batch.ts';
import { commitWatermark } from '../../src/pipeline/commit-watermark.ts';
import { icebergDeps } from '../../src/pipeline/deps.ts';
import type { BatchSpec, Staged } from '../../src/pipeline/events.ts';
import { runCycle } from '../../src/pipeline/local-runner.ts';
import { planCycle } from '../../src/pipeline/plan-cycle.ts';
import { stageBatch } from '../../src/pipeline/stage-batch.ts';
import { useRig } from './fed-rig.ts';
import { CYCLE_MS, fakeClock, LEASE_SECONDS, MINUTE, pastStart, tradeFeed } from './harness.ts';
import { verifyAll } from './verify.ts';

/**
 * A stager that stalls past its lease and resumes after another cycle committed the same batch must
 * not touch a file the committed snapshot refers to. Driven step by step: cycle A passes StageBatch's
 * checks and stalls at its first write; cycle B takes the table over and stages, commits and advances
 * the same batch; meanwhile a back-dated row lands in the window, so A resumes, writes files that differ
 * from B's and fails its row check. The table must stay whole and equal to ClickHouse, A's files must be refused by the
 * commit and collected by orphan removal, never B's.
 */
const TABLE = 'bronze_trades_kraken';
const config = parseConfig({ tables: defaultConfig().tables.filter((t) => t.name === TABLE) }, 'one table');
const target = { namespace: 'cold', name: TABLE };

/**
 * Holds the first ClickHouse call of `method` (`command`: the writes; `query`: the reads) whose SQL
 * names `marker` until released; other calls pass.
 */
function stallWrites(client: ClickHouseClient, marker: string, method: 'command' | 'query' = 'command') {
  const command = client[method].bind(client) as (params: { query: string }) => Promise<unknown>;
  let reached!: () => void;
  let release!: () => void;
  const stalled = new Promise<void>((resolve) => {
    reached = resolve;
  });
  const resumed = new Promise<void>((resolve) => {
    release = resolve;
  });
  let armed = true;
  const stalling = async (params: { query: string }) => {
    if (armed && params.query.includes(marker)) {
      armed = false;
      reached();
      await resumed;
    }
    return command(params);
  };
  Object.assign(client, { [method]: stalling });
  return {
    stalled,
    resume: () => {
      release();
      Object.assign(client, { [method]: command });
    },
  };
}

const SOURCE = 'k2.bronze_trades_kraken';
const instant = (iso: string) => `toDateTime64('${iso.slice(0, 23).replace('T', ' ')}', 6, 'UTC')`;
/** A copy of one row of the batch's window under another symbol (a back-dated insert). */
const copyOneRow = (batch: BatchSpec) =>
  `INSERT INTO ${SOURCE} SELECT * REPLACE ('BACKDATED' AS symbol) FROM ${SOURCE}
   WHERE ingestion_timestamp >= ${instant(batch.windowStart)} AND ingestion_timestamp < ${instant(batch.windowEnd)} LIMIT 1`;
const deleteCopies = () =>
  `ALTER TABLE ${SOURCE} DELETE WHERE symbol = 'BACKDATED' SETTINGS mutations_sync = 2`;

describe('a stalled stager resuming after another cycle committed its batch', () => {
  const clock = fakeClock(pastStart(3));
  const setup = useRig({ name: 'stalled-stager', clock, config });
  let feed: ReturnType<typeof tradeFeed>;
  const deps = (overrides: Parameters<typeof setup.rig.deps>[0] = {}) =>
    setup.rig.deps({ config, ...overrides });
  const planOne = async (until: string): Promise<BatchSpec> => {
    const plan = await planCycle(deps(), { tables: [TABLE], until });
    const batch = plan.layers[0]?.tables[0]?.batches[0];
    if (!batch) throw new Error(`no batch planned until ${until}: ${JSON.stringify(plan.skipped)}`);
    return batch;
  };
  /** Each data file of the current snapshot with the size its manifest records. */
  const referenced = async () => {
    const { metadata } = await loadTable(deps(), target);
    const snapshot = metadata.snapshots.find((s) => s['snapshot-id'] === metadata['current-snapshot-id']);
    const reader = new ManifestReader(deps().store);
    const files: { uri: string; size: number }[] = [];
    for (const m of await reader.list(snapshot?.['manifest-list'] as string))
      for (const e of (await reader.manifest(m.manifest_path)).entries)
        if (e.status !== 2) files.push({ uri: e.data_file.file_path, size: e.data_file.file_size_in_bytes });
    return files;
  };
  const onDisk = async (files: { uri: string }[]) =>
    Promise.all(files.map(async (f) => ({ uri: f.uri, size: (await deps().store.head(f.uri))?.size })));

  let until: string;
  let a: BatchSpec;
  let b: BatchSpec;
  let stagedB: Staged;

  beforeAll(async () => {
    feed = tradeFeed(setup.rig.clickhouse, clock, {
      from: clock.now().getTime() - 2 * 3_600_000,
      seed: 73,
      rowsPerHour: 2_400,
    });
    await feed();
    await runCycle(deps(), {});
    clock.advance(CYCLE_MS);
    await feed();
    // Both cycles are given the same bound, so they plan the very same batch (as a catch-up split does).
    until = new Date(clock.now().getTime() - 10 * MINUTE).toISOString();
  }, 120_000);

  it('B commits while A is stalled; A resumes into a changed window, and B’s snapshot stays whole', async () => {
    a = await planOne(until);
    const stall = stallWrites(setup.rig.clickhouse, `/data/${a.batchId}/`);
    const runA = stageBatch(deps(), a).then(
      (staged) => ({ staged }),
      (error: unknown) => ({ error }),
    );
    await stall.stalled; // A passed the "already in Iceberg?" check, read the window and checked its lease

    clock.advance(LEASE_SECONDS * 1000 + MINUTE);
    b = await planOne(until);
    expect(b.batchId).toBe(a.batchId);
    expect(b.leaseToken).not.toBe(a.leaseToken);
    stagedB = await stageBatch(deps(), b);
    const committed = await commitBatch(deps(), { batch: b, staged: stagedB });
    await commitWatermark(deps(), { batch: b, staged: stagedB, committed });
    const before = await referenced();
    expect(before.map((f) => f.uri)).toEqual(expect.arrayContaining(stagedB.files.map((f) => f.uri)));

    // While A sleeps, a back-dated row lands in the window: A's files now differ from B's.
    await setup.rig.clickhouse.command({ query: copyOneRow(a) });
    stall.resume();
    const outcome = await runA;
    expect('error' in outcome && outcome.error).toBeInstanceOf(StagingMismatchError);
    await setup.rig.clickhouse.command({ query: deleteCopies() });

    // Every file B's snapshot refers to is still there, at the size its manifest records.
    expect(await onDisk(before)).toEqual(before);
    expect(await referenced()).toEqual(before);
    expect((await verifyAll(deps())).problems).toEqual([]);
  });

  it('A, run again with its old event, stages nothing and cannot commit what it wrote', async () => {
    // The batch is in Iceberg now: StageBatch answers from the marker and writes nothing.
    expect(await stageBatch(deps(), a)).toMatchObject({ rows: stagedB.rows, files: [] });
    const filesOfA: Staged['files'] = [];
    for await (const o of deps().store.list(`${a.stagingPrefix}t${a.leaseToken}-`))
      filesOfA.push({ uri: o.uri, bytes: o.size });
    expect(filesOfA.length).toBeGreaterThan(0);
    const before = await deps().catalog.currentMetadataLocation(target);
    await expect(
      commitBatch(deps(), { batch: a, staged: { rows: stagedB.rows, files: filesOfA, durationMs: 0 } }),
    ).rejects.toBeInstanceOf(LeaseError);
    expect(await deps().catalog.currentMetadataLocation(target)).toBe(before);
  });

  it('orphan removal collects the stalled attempt after the grace period and keeps every referenced file', async () => {
    const before = await referenced();
    const attemptsOfA: string[] = [];
    for await (const o of deps().store.list(`${a.stagingPrefix}t${a.leaseToken}-`)) attemptsOfA.push(o.uri);
    expect(attemptsOfA.length).toBeGreaterThan(0);
    // The files' age is set on the fake clock's time line: written when the lease was taken over.
    const written = new Date(clock.now().getTime() - MINUTE);
    for (const uri of attemptsOfA) await utimes(localPath(uri), written, written);

    const young = await removeOrphanFiles(icebergDeps(deps()), {
      table: target,
      olderThanMs: clock.now().getTime() - DEFAULT_ORPHAN_GRACE_MS,
    });
    expect(young.deleted).toBe(0);

    clock.advance(DEFAULT_ORPHAN_GRACE_MS + MINUTE);
    const swept = await removeOrphanFiles(icebergDeps(deps()), {
      table: target,
      olderThanMs: clock.now().getTime() - DEFAULT_ORPHAN_GRACE_MS,
    });
    expect(swept.orphans).toEqual(expect.arrayContaining(attemptsOfA));
    const left: string[] = [];
    for await (const o of deps().store.list(`${a.stagingPrefix}t${a.leaseToken}-`)) left.push(o.uri);
    expect(left).toEqual([]);
    expect(await onDisk(before)).toEqual(before);
    expect((await verifyAll(deps())).problems).toEqual([]);
  });
});

describe('the commit takes only one attempt of the current lease', () => {
  const clock = fakeClock(pastStart(3));
  const setup = useRig({ name: 'attempt-fence', clock, config });
  const deps = () => setup.rig.deps({ config });

  it('refuses files of another lease, outside the batch folder, or of two attempts, and commits nothing', async () => {
    const feed = tradeFeed(setup.rig.clickhouse, clock, {
      from: clock.now().getTime() - 2 * 3_600_000,
      seed: 74,
      rowsPerHour: 1_200,
    });
    await feed();
    const plan = await planCycle(deps(), { tables: [TABLE] });
    const batch = plan.layers[0]?.tables[0]?.batches[0] as BatchSpec;
    const first = await stageBatch(deps(), batch);
    const second = await stageBatch(deps(), batch);
    expect(first.files[0]?.uri).toMatch(new RegExp(`^${batch.stagingPrefix}t${batch.leaseToken}-[0-9a-f]+/`));
    expect(second.files[0]?.uri).not.toBe(first.files[0]?.uri);
    const before = await deps().catalog.currentMetadataLocation(target);

    const otherLease = first.files.map((f) => ({
      ...f,
      uri: f.uri.replace(`/t${batch.leaseToken}-`, `/t${Number(batch.leaseToken) + 1}-`),
    }));
    const outside = first.files.map((f) => ({
      ...f,
      uri: f.uri.replace(`/data/${batch.batchId}/`, '/data/'),
    }));
    const mixed = [first.files[0], second.files[0]] as Staged['files'];
    for (const files of [otherLease, outside, mixed])
      await expect(commitBatch(deps(), { batch, staged: { ...first, files } })).rejects.toThrow(
        /refusing to commit batch/,
      );
    expect(await deps().catalog.currentMetadataLocation(target)).toBe(before);

    const committed = await commitBatch(deps(), { batch, staged: second });
    await commitWatermark(deps(), { batch, staged: second, committed });
    expect((await verifyAll(deps())).problems).toEqual([]);
  });

  it('a stager that stalls before its first write and lost its lease meanwhile writes nothing', async () => {
    clock.advance(LEASE_SECONDS * 1000 + MINUTE);
    const plan = await planCycle(deps(), { tables: [TABLE] });
    const batch = plan.layers[0]?.tables[0]?.batches[0] as BatchSpec;
    const stall = stallWrites(setup.rig.clickhouse, 'GROUP BY b, k', 'query');
    const running = stageBatch(deps(), batch).catch((error: unknown) => error);
    await stall.stalled; // reading the window's histogram
    clock.advance(LEASE_SECONDS * 1000 + MINUTE);
    await planCycle(deps(), { tables: [TABLE] }); // another cycle takes the table
    stall.resume();
    expect(await running).toBeInstanceOf(LeaseError);
    const written: string[] = [];
    for await (const o of deps().store.list(`${batch.stagingPrefix}t${batch.leaseToken}-`))
      written.push(o.uri);
    expect(written).toEqual([]);
  });
});
