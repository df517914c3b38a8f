import { beforeEach, expect, it } from 'vitest';
import { InputError, LeaseError } from '../../src/errors.ts';
import { makeBatch } from '../../src/plan/batch.ts';
import type { WatermarkStore } from '../../src/watermark/types.ts';
import { type ContractContext, T0, T1, T2, T3 } from './contract.ts';
import type { FakeClock } from './fake-clock.ts';

/** Contract cases: table creation, failures, no-op passes, reconcile, history, input checks. */
export function recordCases(ctx: ContractContext) {
  const { lease, batchInput } = ctx;
  let store: WatermarkStore;
  let clock: FakeClock;
  beforeEach(() => {
    ({ store, clock } = ctx.current());
  });

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
    const undated = store.ensureTables([{ table: 'x', initialCursor: 'yesterday' }]);
    await expect(undated).rejects.toThrow(InputError);
    await expect(undated).rejects.toThrow(/initialCursor: "yesterday" is not a valid instant/);
  });

  it('creates a table named twice in one call once, at the first cursor given; nothing from no tables', async () => {
    expect(
      await store.ensureTables([
        { table: 'ohlcv_1m', initialCursor: T1 },
        { table: 'ohlcv_1m', initialCursor: T2 },
      ]),
    ).toEqual({ created: ['ohlcv_1m'] });
    expect((await store.get('ohlcv_1m')).cursor).toBe(T1);
    expect(await store.ensureTables([])).toEqual({ created: [] });
    expect((await store.list()).map((w) => w.table)).toEqual(['candles', 'ohlcv_1m', 'trades']);
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

  it('reconciles only under a lease still held, and leaves the table as a commit would', async () => {
    let token = await lease();
    await store.recordFailure({
      table: 'trades',
      leaseToken: token,
      error: { name: 'UnavailableError', message: 'watermark step timed out' },
      durationMs: 5,
    });
    // Its lease went with the failure: the same token, no longer held, reconciles nothing.
    const marker = makeBatch('trades', T0, T1);
    const r = { table: 'trades', batchId: marker.batchId, windowEnd: T1, rows: 7, leaseToken: token };
    await expect(store.reconcile(r)).rejects.toThrow(LeaseError);
    token = await lease();
    expect(await store.reconcile({ ...r, leaseToken: token })).toMatchObject({ result: 'reconciled' });
    // The marker is the table's newest in Iceberg (health and planning check the chain for it), and
    // the failures before are over.
    expect(await store.get('trades')).toMatchObject({
      lastMarkerBatchId: marker.batchId,
      consecutiveFailures: 0,
      lastError: null,
      status: 'ok',
    });
  });

  it("counts a failure outside any lease (planning) without taking a holder's lease away", async () => {
    const token = await lease('cycle-a', 60);
    expect(
      await store.recordFailure({
        table: 'trades',
        leaseToken: null,
        error: { name: 'PlanError', message: 'ClickHouse histogram failed' },
        durationMs: 1,
      }),
    ).toEqual({ counted: true, consecutiveFailures: 1 });
    expect((await store.get('trades')).lease?.token).toBe(token);
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
}
