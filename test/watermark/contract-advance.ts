import { beforeEach, expect, it } from 'vitest';
import { InputError, LeaseError, WatermarkConflictError } from '../../src/errors.ts';
import type { WatermarkStore } from '../../src/watermark/types.ts';
import { CONTRACT_PROCESS, type ContractContext, T0, T1, T2, T3, within } from './contract.ts';
import type { FakeClock } from './fake-clock.ts';

/** Contract cases: leases, compare-and-set advance, replays, fencing, forward-only cursor. */
export function leaseAndAdvanceCases(ctx: ContractContext) {
  const { lease, batchInput } = ctx;
  let store: WatermarkStore;
  let clock: FakeClock;
  beforeEach(() => {
    ({ store, clock } = ctx.current());
  });

  it('grants a lease to one holder at a time, with a token that only grows', async () => {
    const a = await store.acquireLease('trades', 'cycle-a', 60);
    expect(a).toEqual({ acquired: true, token: '1', expiresAt: '2026-11-22T03:01:00.000Z' });
    expect(await within(store.acquireLease('trades', 'cycle-b', 60))).toEqual({
      acquired: false,
      holder: 'cycle-a',
      expiresAt: '2026-11-22T03:01:00.000Z',
    });
    const renewed = await store.acquireLease('trades', 'cycle-a', 60);
    expect(renewed).toMatchObject({ acquired: true, token: '2' });
    expect((await store.get('trades')).status).toBe('running');
    clock.advance(61);
    expect(await store.acquireLease('trades', 'cycle-b', 60)).toMatchObject({ acquired: true, token: '3' });
    expect(await store.releaseLease('trades', '2')).toEqual({ released: false });
    expect((await store.get('trades')).lease).toEqual({
      holder: 'cycle-b',
      token: '3',
      expiresAt: '2026-11-22T03:02:01.000Z',
      ...CONTRACT_PROCESS,
      startedAt: '2026-11-22T03:01:01.000Z',
    });
    expect(await store.releaseLease('trades', '3')).toEqual({ released: true });
    const after = await store.get('trades');
    expect(after.lease).toBeNull();
    expect(after.status).toBe('idle');
    expect(await store.acquireLease('trades', 'cycle-c', 60)).toMatchObject({ acquired: true, token: '4' });
    await expect(store.acquireLease('nope', 'x', 60)).rejects.toThrow(InputError);
    await expect(store.acquireLease('trades', 'x', 0)).rejects.toThrow(InputError);
    await expect(store.acquireLease('trades', '', 60)).rejects.toThrow(InputError);
  });

  it('advances by compare-and-set and records the run', async () => {
    const token = await lease();
    const input = batchInput(T0, T1, token);
    clock.advance(5);
    expect(await store.advance(input)).toEqual({ result: 'advanced', version: 1 });
    expect(await store.get('trades')).toMatchObject({
      cursor: T1,
      version: 1,
      status: 'ok',
      lastBatchId: input.batchId,
      lastSuccessAt: clock.iso(),
      lastCheckedAt: clock.iso(),
      lastRows: 100,
      lastDurationMs: 1500,
      consecutiveFailures: 0,
      lastError: null,
    });
    const [run, ...rest] = await store.history({ table: 'trades' });
    expect(rest).toEqual([]);
    expect(run).toMatchObject({
      table: 'trades',
      batchId: input.batchId,
      windowStart: T0,
      windowEnd: T1,
      rows: 100,
      files: 2,
      bytes: 4096,
      durationMs: 1500,
      outcome: 'committed',
      error: null,
      leaseToken: token,
      recordedAt: clock.iso(),
    });
    // The lease is kept for the next batch of the pass unless asked to release it.
    expect((await store.get('trades')).lease?.token).toBe(token);
    const next = batchInput(T1, T2, token, { releaseLease: true });
    expect(await store.advance(next)).toEqual({ result: 'advanced', version: 2 });
    expect((await store.get('trades')).lease).toBeNull();
  });

  it('treats a replay of the same batch as success without writing anything', async () => {
    const token = await lease();
    const input = batchInput(T0, T1, token);
    await store.advance(input);
    const before = await store.get('trades');
    clock.advance(30);
    expect(await store.advance(input)).toEqual({ result: 'replayed', version: 1 });
    expect(await store.get('trades')).toEqual(before);
    // Even once the lease is gone and the table moved on, the batch is known done.
    await store.advance(batchInput(T1, T2, token, { releaseLease: true }));
    expect(await store.advance(input)).toEqual({ result: 'replayed', version: 2 });
    expect((await store.history({ table: 'trades' })).length).toBe(2);
  });

  it('refuses a batch that does not start at the cursor with a typed conflict', async () => {
    const token = await lease();
    await store.advance(batchInput(T0, T1, token));
    const skipping = batchInput(T2, T3, token);
    const err = await within(store.advance(skipping)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WatermarkConflictError);
    expect((err as WatermarkConflictError).details).toMatchObject({ expectedCursor: T2, actualCursor: T1 });
    expect((err as Error).message).toContain(T1);
    const overlapping = batchInput(T0, T2, token);
    await expect(store.advance(overlapping)).rejects.toThrow(WatermarkConflictError);
    expect((await store.get('trades')).cursor).toBe(T1);
  });

  it('takes the batch a watermark was rewound to as done, with no run of it recorded; another batch ending there conflicts', async () => {
    // A watermark restored from Iceberg's markers: the batch is in Iceberg, the store never saw its commit.
    const restored = batchInput(T0, T1, '1');
    await store.setCursor({
      table: 'trades',
      cursor: T1,
      actor: 'ops',
      reason: 'restored from Iceberg',
      allowBackwards: false,
      action: 'rewind',
      lastBatchId: restored.batchId,
    });
    const token = await lease();
    expect(await store.advance({ ...restored, leaseToken: token })).toEqual({
      result: 'replayed',
      version: 1,
    });
    await store.advance(batchInput(T1, T3, token));
    const endingThere = store.advance(batchInput(T2, T3, token));
    await expect(endingThere).rejects.toThrow(WatermarkConflictError);
    expect(await store.history({ table: 'trades' })).toHaveLength(1);
  });

  it('lets a holder past its expiry finish while nobody has taken the lease over', async () => {
    const token = await lease('cycle-a', 60);
    clock.advance(600);
    expect(await store.advance(batchInput(T0, T1, token))).toMatchObject({ result: 'advanced' });
  });

  it("fences out a stale holder's advance once another cycle took the expired lease", async () => {
    const stale = await lease('cycle-a', 60);
    clock.advance(120);
    const fresh = await lease('cycle-b', 60);
    const err = await store.advance(batchInput(T0, T1, stale)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LeaseError);
    expect((err as Error).message).toMatch(/cycle-b/);
    expect((await store.get('trades')).cursor).toBe(T0);
    expect(await store.advance(batchInput(T0, T1, fresh))).toMatchObject({ result: 'advanced' });
    // A released lease carries no write permission either.
    await store.releaseLease('trades', fresh);
    await expect(store.advance(batchInput(T1, T2, fresh))).rejects.toThrow(LeaseError);
    expect(await store.history({ table: 'trades' })).toHaveLength(1);
  });

  it('frees a lease at the very instant it expires, as health calls it stale from then on', async () => {
    await lease('cycle-a', 60);
    clock.advance(59);
    expect(await store.acquireLease('trades', 'cycle-b', 60)).toMatchObject({ acquired: false });
    clock.advance(1);
    expect(await store.acquireLease('trades', 'cycle-b', 60)).toMatchObject({ acquired: true });
  });

  it("takes a batch's failed attempt for no success: its holder, fenced out since, is refused", async () => {
    const stale = await lease('cycle-a', 60);
    const input = batchInput(T0, T1, stale);
    await store.recordFailure({
      table: 'trades',
      batchId: input.batchId,
      windowStart: T0,
      windowEnd: T1,
      leaseToken: stale,
      error: { name: 'UnavailableError', message: 'Iceberg commit timed out' },
      durationMs: 10,
    });
    await lease('cycle-b', 60);
    await expect(store.advance(input)).rejects.toThrow(LeaseError);
    expect((await store.get('trades')).cursor).toBe(T0);
  });

  it('gives a lease back without forgetting how the last pass ended', async () => {
    const token = await lease();
    await store.advance(batchInput(T0, T1, token));
    expect(await store.releaseLease('trades', token)).toEqual({ released: true });
    expect(await store.get('trades')).toMatchObject({ status: 'ok', lease: null, cursor: T1 });
  });

  it('never moves backwards except by an audited reset', async () => {
    const token = await lease();
    await store.advance(batchInput(T0, T1, token));
    await store.advance(batchInput(T1, T2, token, { releaseLease: true }));
    const inverted = { ...batchInput(T1, T2, token), windowStart: T2, windowEnd: T1 };
    await expect(store.advance(inverted)).rejects.toThrow(InputError);
    const refused = store.setCursor({
      table: 'trades',
      cursor: T1,
      actor: 'ops@example',
      reason: 'replay',
      allowBackwards: false,
    });
    await expect(refused).rejects.toThrow(/backwards.*reset/);
    expect((await store.get('trades')).cursor).toBe(T2);
    expect(await store.audit()).toEqual([]);

    clock.advance(10);
    const reset = await store.setCursor({
      table: 'trades',
      cursor: T1,
      actor: 'ops@example',
      reason: 'Iceberg table restored from backup',
      allowBackwards: true,
      // A move back skips nothing, whatever the caller says: the audit must not report a skipped range.
      skippedRows: 5,
    });
    expect(reset).toEqual({ changed: true, previousCursor: T2, version: 3 });
    expect(await store.get('trades')).toMatchObject({
      cursor: T1,
      version: 3,
      status: 'idle',
      lease: null,
    });
    expect(await store.audit({ table: 'trades' })).toEqual([
      {
        id: expect.any(String),
        table: 'trades',
        action: 'cursor',
        oldCursor: T2,
        newCursor: T1,
        backwards: true,
        actor: 'ops@example',
        reason: 'Iceberg table restored from backup',
        at: clock.iso(),
        skippedRows: null,
      },
    ]);
    const forward = {
      table: 'trades',
      cursor: T3,
      actor: 'ops',
      reason: 'skip bad hour',
      allowBackwards: false,
      skippedRows: 42,
    };
    expect(await store.setCursor(forward)).toMatchObject({ changed: true, previousCursor: T1 });
    expect(await store.setCursor(forward)).toMatchObject({ changed: false, previousCursor: T3 });
    const audit = await store.audit({ limit: 10 });
    // The rows a forced set left out are on record: audits report that range as skipped on purpose.
    expect(audit.map((a) => [a.oldCursor, a.newCursor, a.backwards, a.skippedRows])).toEqual([
      [T1, T3, false, 42],
      [T2, T1, true, null],
    ]);
    await expect(store.setCursor({ ...forward, cursor: T0, skippedRows: -1 })).rejects.toThrow(/skippedRows/);
    await expect(store.setCursor({ ...forward, actor: ' ' })).rejects.toThrow(/actor/);
  });

  it('refuses a manual change under a live lease, and fences the holder of an expired one', async () => {
    const token = await lease('cycle-a', 60);
    const change = { table: 'trades', cursor: T1, actor: 'ops', reason: 'test', allowBackwards: false };
    const err = await store.setCursor(change).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LeaseError);
    expect((err as Error).message).toContain('cycle-a');
    clock.advance(60);
    // From the instant the lease expires, as for a takeover.
    await store.setCursor(change);
    // The expired holder still carries a batch from T1: the reset's new token refuses it.
    await expect(store.advance(batchInput(T1, T2, token))).rejects.toThrow(LeaseError);
    const failed = {
      table: 'trades',
      leaseToken: token,
      error: { name: 'E', message: 'late' },
      durationMs: 1,
    };
    expect(await store.recordFailure(failed)).toMatchObject({ counted: false });
    expect(await store.get('trades')).toMatchObject({ cursor: T1, status: 'idle', consecutiveFailures: 0 });
  });
}
