import { beforeEach, describe, expect, it } from 'vitest';
import { InputError, LeaseError, WatermarkConflictError } from '../../src/errors.ts';
import { makeBatch } from '../../src/plan/batch.ts';
import type { AdvanceInput, WatermarkStore } from '../../src/watermark/types.ts';
import { type FakeClock, fakeClock } from './fake-clock.ts';

/**
 * The behaviour every WatermarkStore must have, run against the in-memory store and against Postgres.
 * `makeStore` returns an empty, migrated store reading time from `clock`.
 */
export function watermarkStoreContract(
  name: string,
  makeStore: (clock: () => Date) => Promise<WatermarkStore>,
) {
  const T0 = '2026-11-22T00:00:00.000Z';
  const T1 = '2026-11-22T00:15:00.000Z';
  const T2 = '2026-11-22T00:30:00.000Z';
  const T3 = '2026-11-22T00:45:00.000Z';

  describe(`WatermarkStore contract: ${name}`, () => {
    let clock: FakeClock;
    let store: WatermarkStore;

    beforeEach(async () => {
      clock = fakeClock();
      store = await makeStore(clock.now);
      await store.ensureTables([
        { table: 'trades', initialCursor: T0 },
        { table: 'candles', initialCursor: T0 },
      ]);
    });

    const batchInput = (start: string, end: string, token: string, extra: Partial<AdvanceInput> = {}) => {
      const b = makeBatch('trades', start, end);
      return {
        ...b,
        leaseToken: token,
        rows: 100,
        files: 2,
        bytes: 4096,
        durationMs: 1500,
        outcome: 'committed' as const,
        ...extra,
      };
    };
    const lease = async (holder = 'cycle-a', ttl = 300) => {
      const got = await store.acquireLease('trades', holder, ttl);
      if (!got.acquired) throw new Error(`lease not acquired: held by ${got.holder}`);
      return got.token;
    };

    it('creates missing watermarks only, and names known tables for an unknown one', async () => {
      const again = await store.ensureTables([
        { table: 'trades', initialCursor: T3 },
        { table: 'ohlcv_1m', initialCursor: '2026-11-21T00:00:00Z' },
      ]);
      expect(again.created).toEqual(['ohlcv_1m']);
      const trades = await store.get('trades');
      expect(trades).toMatchObject({ cursor: T0, version: 0, status: 'idle', consecutiveFailures: 0 });
      expect(trades.lease).toBeNull();
      expect(trades.leaseToken).toBe('0');
      expect((await store.list()).map((w) => w.table)).toEqual(['candles', 'ohlcv_1m', 'trades']);
      const err = await store.get('trdes').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(InputError);
      expect((err as Error).message).toMatch(/trdes.*candles, ohlcv_1m, trades/);
      await expect(store.ensureTables([{ table: 'x', initialCursor: 'yesterday' }])).rejects.toThrow(
        InputError,
      );
    });

    it('grants a lease to one holder at a time, with a token that only grows', async () => {
      const a = await store.acquireLease('trades', 'cycle-a', 60);
      expect(a).toEqual({ acquired: true, token: '1', expiresAt: '2026-11-22T03:01:00.000Z' });
      expect(await store.acquireLease('trades', 'cycle-b', 60)).toEqual({
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
      const err = await store.advance(skipping).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(WatermarkConflictError);
      expect((err as WatermarkConflictError).details).toMatchObject({ expectedCursor: T2, actualCursor: T1 });
      expect((err as Error).message).toContain(T1);
      const overlapping = batchInput(T0, T2, token);
      await expect(store.advance(overlapping)).rejects.toThrow(WatermarkConflictError);
      expect((await store.get('trades')).cursor).toBe(T1);
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
          oldCursor: T2,
          newCursor: T1,
          backwards: true,
          actor: 'ops@example',
          reason: 'Iceberg table restored from backup',
          at: clock.iso(),
        },
      ]);
      const forward = {
        table: 'trades',
        cursor: T3,
        actor: 'ops',
        reason: 'skip bad hour',
        allowBackwards: false,
      };
      expect(await store.setCursor(forward)).toMatchObject({ changed: true, previousCursor: T1 });
      expect(await store.setCursor(forward)).toMatchObject({ changed: false, previousCursor: T3 });
      const audit = await store.audit({ limit: 10 });
      expect(audit.map((a) => [a.oldCursor, a.newCursor, a.backwards])).toEqual([
        [T1, T3, false],
        [T2, T1, true],
      ]);
      await expect(store.setCursor({ ...forward, actor: ' ' })).rejects.toThrow(/actor/);
    });

    it('refuses a manual change under a live lease, and fences the holder of an expired one', async () => {
      const token = await lease('cycle-a', 60);
      const change = { table: 'trades', cursor: T1, actor: 'ops', reason: 'test', allowBackwards: false };
      const err = await store.setCursor(change).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(LeaseError);
      expect((err as Error).message).toContain('cycle-a');
      clock.advance(61);
      await store.setCursor(change);
      // The expired holder still carries a batch from T1: the reset's new token refuses it.
      await expect(store.advance(batchInput(T1, T2, token))).rejects.toThrow(LeaseError);
      expect((await store.get('trades')).cursor).toBe(T1);
    });

    it('counts consecutive failures, and a success resets them', async () => {
      let token = await lease();
      const failure = (leaseToken: string | null) => ({
        table: 'trades',
        batchId: makeBatch('trades', T0, T1).batchId,
        windowStart: T0,
        windowEnd: T1,
        leaseToken,
        error: { name: 'UnavailableError', message: 'ClickHouse at ch:8123 timed out' },
        durationMs: 900,
      });
      expect(await store.recordFailure(failure(token))).toEqual({ counted: true, consecutiveFailures: 1 });
      expect(await store.get('trades')).toMatchObject({
        status: 'failed',
        consecutiveFailures: 1,
        lastError: { name: 'UnavailableError', message: 'ClickHouse at ch:8123 timed out' },
        lease: null,
      });
      expect(await store.recordFailure(failure(null))).toEqual({ counted: true, consecutiveFailures: 2 });
      token = await lease();
      // A fenced-out attempt is history only; it must not mark the current holder's run failed.
      expect(await store.recordFailure(failure('1'))).toEqual({ counted: false, consecutiveFailures: 2 });
      expect((await store.get('trades')).lease?.token).toBe(token);
      const runs = await store.history({ table: 'trades' });
      expect(runs.map((r) => r.outcome)).toEqual(['failed', 'failed', 'failed']);
      expect(runs[0]).toMatchObject({
        error: { name: 'UnavailableError' },
        durationMs: 900,
        windowStart: T0,
      });

      await store.advance(batchInput(T0, T1, token));
      expect(await store.get('trades')).toMatchObject({
        consecutiveFailures: 0,
        status: 'ok',
        lastError: null,
      });
    });

    it('ends an up-to-date pass: status leaves running, last checked is set, lease released', async () => {
      const token = await lease();
      expect((await store.get('trades')).status).toBe('running');
      clock.advance(7);
      expect(await store.recordNoop({ table: 'trades', leaseToken: token, reason: 'up-to-date' })).toEqual({
        recorded: true,
      });
      expect(await store.get('trades')).toMatchObject({
        status: 'ok',
        lastCheckedAt: clock.iso(),
        lease: null,
      });
      const [run] = await store.history({ table: 'trades' });
      expect(run).toMatchObject({ outcome: 'noop', note: 'up-to-date', rows: 0 });

      const t2 = await lease();
      await store.recordFailure({
        table: 'trades',
        leaseToken: t2,
        error: { name: 'E', message: 'm' },
        durationMs: 1,
      });
      const t3 = await lease();
      await store.recordNoop({ table: 'trades', leaseToken: t3, reason: 'waiting-for-upstream' });
      expect(await store.get('trades')).toMatchObject({
        status: 'failed',
        consecutiveFailures: 1,
        lease: null,
      });
      expect(await store.recordNoop({ table: 'trades', leaseToken: t2, reason: 'late' })).toEqual({
        recorded: false,
      });
    });

    it('reconciles forward to a marker found in Iceberg, never backwards', async () => {
      const token = await lease();
      const marker = makeBatch('trades', T1, T2);
      const r = { table: 'trades', batchId: marker.batchId, windowEnd: T2, rows: 42, leaseToken: token };
      expect(await store.reconcile(r)).toEqual({ result: 'reconciled', previousCursor: T0 });
      expect(await store.get('trades')).toMatchObject({
        cursor: T2,
        version: 1,
        lastBatchId: marker.batchId,
      });
      const [run] = await store.history();
      expect(run).toMatchObject({ outcome: 'reconciled', windowStart: T0, windowEnd: T2, rows: 42 });
      expect(await store.reconcile(r)).toEqual({ result: 'unchanged', previousCursor: T2 });
      expect(await store.reconcile({ ...r, windowEnd: T1 })).toEqual({
        result: 'unchanged',
        previousCursor: T2,
      });
      // The crashed attempt that committed this batch later retries its watermark step: a replay.
      expect(await store.advance(batchInput(T1, T2, token))).toMatchObject({ result: 'replayed' });
      await expect(store.reconcile({ ...r, windowEnd: T3, leaseToken: '99' })).rejects.toThrow(LeaseError);
      expect(await store.history()).toHaveLength(1);
    });

    it('lists history newest first, filtered by table, time and limit', async () => {
      const token = await lease();
      await store.advance(batchInput(T0, T1, token));
      clock.advance(60);
      const since = clock.iso();
      await store.advance(batchInput(T1, T2, token));
      const c = await store.acquireLease('candles', 'cycle-a', 60);
      if (c.acquired) await store.recordNoop({ table: 'candles', leaseToken: c.token, reason: 'up-to-date' });
      expect((await store.history()).map((r) => [r.table, r.windowEnd])).toEqual([
        ['candles', null],
        ['trades', T2],
        ['trades', T1],
      ]);
      expect((await store.history({ table: 'trades', since })).map((r) => r.windowEnd)).toEqual([T2]);
      expect(await store.history({ limit: 1 })).toHaveLength(1);
      await expect(store.history({ limit: 0 })).rejects.toThrow(InputError);
      await expect(store.history({ table: 'nope' })).rejects.toThrow(InputError);
    });

    it('rejects malformed input with the field named', async () => {
      const token = await lease();
      await expect(store.advance(batchInput(T0, T1, 'abc'))).rejects.toThrow(/leaseToken "abc"/);
      await expect(store.advance(batchInput(T0, T1, token, { rows: -1 }))).rejects.toThrow(/rows/);
      await expect(store.advance(batchInput(T0, T1, token, { windowEnd: 'soon' }))).rejects.toThrow(
        /windowEnd/,
      );
      await expect(store.advance({ ...batchInput(T0, T1, token), table: 'no-such' })).rejects.toThrow(
        InputError,
      );
      await expect(store.advance({ ...batchInput(T0, T1, token), table: 'ghost' })).rejects.toThrow(
        /ghost.*trades/,
      );
      expect((await store.get('trades')).cursor).toBe(T0);
    });
  });
}
