import { beforeEach, expect, it } from 'vitest';
import { LeaseError } from '../../src/errors.ts';
import type { WatermarkStore } from '../../src/watermark/types.ts';
import { CONTRACT_PROCESS, type ContractContext, T0, T1, T2 } from './contract.ts';
import type { FakeClock } from './fake-clock.ts';

/** Contract cases: who holds a lease, releasing a process's leases, the audited release and rewind. */
export function leaseHolderCases(ctx: ContractContext) {
  const { lease, batchInput } = ctx;
  let store: WatermarkStore;
  let clock: FakeClock;
  beforeEach(() => {
    ({ store, clock } = ctx.current());
  });

  it("tells time by the store's clock and names the holder's process and start on the lease", async () => {
    expect(await store.now()).toBe(clock.iso());
    const started = clock.iso();
    await lease('cycle-a', 60);
    clock.advance(30);
    await lease('cycle-a', 60);
    expect((await store.get('trades')).lease).toEqual({
      holder: 'cycle-a',
      token: '2',
      expiresAt: '2026-11-22T03:01:30.000Z',
      ...CONTRACT_PROCESS,
      // A renewal keeps the time the holder first took it.
      startedAt: started,
    });
  });

  it("releases every lease of the store's own process at once (a signal), and only those", async () => {
    await lease('run-1', 900);
    await store.acquireLease('candles', 'run-1', 900);
    expect(await store.releaseOwnLeases()).toEqual({ tables: ['candles', 'trades'] });
    expect((await store.list()).map((w) => [w.table, w.lease, w.status])).toEqual([
      ['candles', null, 'idle'],
      ['trades', null, 'idle'],
    ]);
    expect(await store.releaseOwnLeases()).toEqual({ tables: [] });
    expect(await store.acquireLease('trades', 'cycle-b', 60)).toMatchObject({ acquired: true });
  });

  it('releases a stuck lease on request, audited, and fences its holder out', async () => {
    expect(await store.forceRelease({ table: 'trades', actor: 'ops', reason: 'none held' })).toEqual({
      released: false,
      lease: null,
    });
    const token = await lease('cycle-stuck', 900);
    clock.advance(5);
    const result = await store.forceRelease({ table: 'trades', actor: 'ops', reason: 'host died' });
    expect(result).toMatchObject({ released: true, lease: { holder: 'cycle-stuck', token } });
    expect((await store.get('trades')).lease).toBeNull();
    // The stuck holder resumes: its token is no longer current.
    await expect(store.advance(batchInput(T0, T1, token))).rejects.toThrow(LeaseError);
    // Nor does its pass count as a check: the table must not look looked-after while nobody moves it.
    const before = await store.get('trades');
    clock.advance(5);
    expect(await store.recordNoop({ table: 'trades', leaseToken: token, reason: 'up-to-date' })).toEqual({
      recorded: false,
    });
    expect((await store.get('trades')).lastCheckedAt).toBe(before.lastCheckedAt);
    const [audit] = await store.audit({ table: 'trades' });
    expect(audit).toMatchObject({ action: 'release', oldCursor: T0, newCursor: T0, actor: 'ops' });
    expect(audit?.reason).toContain('host died');
    expect(audit?.reason).toContain('cycle-stuck on contract-host pid 4242');
    await expect(store.forceRelease({ table: 'trades', actor: 'ops', reason: ' ' })).rejects.toThrow(
      /reason/,
    );
  });

  it('rewinds to a batch Iceberg holds, recording it as the last batch, audited as a rewind', async () => {
    const token = await lease();
    const first = batchInput(T0, T1, token);
    await store.advance(first);
    // An empty window commits nothing to Iceberg: the last batch with a marker stays the first.
    const empty = batchInput(T1, T2, token, { rows: 0, files: 0, bytes: 0, releaseLease: true });
    await store.advance(empty);
    expect(await store.get('trades')).toMatchObject({
      lastBatchId: empty.batchId,
      lastMarkerBatchId: first.batchId,
    });
    const rewound = await store.setCursor({
      table: 'trades',
      cursor: T1,
      actor: 'ops',
      reason: 'catalog restored',
      allowBackwards: true,
      action: 'rewind',
      lastBatchId: first.batchId,
    });
    expect(rewound).toMatchObject({ changed: true, previousCursor: T2 });
    expect(await store.get('trades')).toMatchObject({
      cursor: T1,
      lastBatchId: first.batchId,
      lastMarkerBatchId: first.batchId,
    });
    const [audit] = await store.audit({ table: 'trades' });
    expect(audit).toMatchObject({ action: 'rewind', oldCursor: T2, newCursor: T1, backwards: true });
  });

  it('records which catalog and location hold a table history', async () => {
    expect((await store.get('trades')).iceberg).toBeNull();
    const binding = { catalog: 'postgres:k2', location: 'file:///w/cold/trades' };
    await store.bindCatalog('trades', binding);
    await store.bindCatalog('trades', binding);
    expect((await store.get('trades')).iceberg).toEqual(binding);
    expect((await store.get('candles')).iceberg).toBeNull();
    // Moved within the same catalog: the new location is the one recorded.
    const moved = { ...binding, location: 'file:///w2/cold/trades' };
    await store.bindCatalog('trades', moved);
    expect((await store.get('trades')).iceberg).toEqual(moved);
  });
}
