import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateTrades } from '../../src/clickhouse/demo-trades.ts';
import { runCycle } from '../../src/pipeline/local-runner.ts';
import type { WatermarkStore } from '../../src/watermark/store.ts';
import { openWorld, type World } from '../support/world.ts';

const MIN = 60_000;

/**
 * The leases planning takes, where they could be left wrong: a cycle moves never-offloaded watermarks
 * to their first offload's start before it takes any lease, so an overlapping cycle can take a lease in
 * between (seen when two first cycles start together); and a store failing part-way through taking
 * them must not leave the ones already taken to block every retry until they expire.
 */
describe('a first offload raced by another cycle', () => {
  let world: World;
  beforeAll(async () => {
    world = await openWorld();
  });
  afterAll(() => world?.close());

  it('a cycle that stalled between the read and the move, while another offloaded past it, leaves the table and fails nothing', async () => {
    // The first test of the file: no cycle has touched this table yet.
    const table = 'bronze_trades_coinbase';
    const store = world.deps().watermarks;
    await store.ensureTables(
      world.deps().config.tables.map((t) => ({ table: t.name, initialCursor: t.initialCursor })),
    );
    expect((await store.get(table)).version).toBe(0);
    const stalled: WatermarkStore = {
      ...store,
      setCursor: async (input) => {
        if (input.table === table) {
          // Meanwhile another cycle made the first-offload move and committed a batch beyond it.
          await store.setCursor(input);
          const lease = await store.acquireLease(table, 'cycle-other', 900);
          if (!lease.acquired) throw new Error('the other cycle could not lease the table');
          const w = await store.get(table);
          const end = new Date(Date.parse(w.cursor) + 60_000).toISOString();
          await store.advance({
            table,
            batchId: 'f'.repeat(32),
            windowStart: w.cursor,
            windowEnd: end,
            leaseToken: lease.token,
            rows: 0,
            files: 0,
            bytes: 0,
            durationMs: 1,
            outcome: 'committed',
          });
          await store.releaseLease(table, lease.token);
          otherEnd = end;
          try {
            return await store.setCursor(input);
          } finally {
            // The stalled move must not take the watermark back below what the other cycle offloaded.
            afterMove = (await store.get(table)).cursor;
          }
        }
        return store.setCursor(input);
      },
    };
    let otherEnd: string | undefined;
    let afterMove: string | undefined;
    const result = await runCycle(world.deps({ watermarks: stalled }), { tables: [table] });
    expect(result.passes.flatMap((p) => p.tables.filter((t) => t.status === 'failed'))).toEqual([]);
    expect(otherEnd).toBeDefined();
    expect(afterMove).toBe(otherEnd);
  });

  it("a move refused while the watermark is still untouched is not taken for another cycle's: the plan fails", async () => {
    const table = 'bronze_trades_kraken';
    const store = world.deps().watermarks;
    expect((await store.get(table)).version).toBe(0);
    const failing: WatermarkStore = {
      ...store,
      setCursor: async (input) => {
        if (input.table === table) throw new Error('Connection terminated unexpectedly');
        return store.setCursor(input);
      },
    };
    await expect(runCycle(world.deps({ watermarks: failing }), { tables: [table] })).rejects.toThrow(
      'Connection terminated unexpectedly',
    );
    expect((await store.get(table)).version).toBe(0);
  });

  it("a table another cycle holds is left to it even where the source's clock already saw the lease expire", async () => {
    const table = 'bronze_trades_kraken';
    const store = world.deps().watermarks;
    const lease = await store.acquireLease(table, 'cycle-other', 900);
    if (!lease.acquired) throw new Error('could not lease the table');
    // ClickHouse's clock 20 minutes ahead of Postgres's: by it the 15-minute lease is over, by Postgres not.
    const ahead = new Date(world.now.getTime() + 20 * MIN);
    const result = await runCycle(world.deps({ sourceClock: async () => ahead }), { tables: [table] });
    expect(result.passes.flatMap((p) => p.tables.filter((t) => t.status === 'failed'))).toEqual([]);
    expect(result.passes[0]?.skipped.find((s) => s.table === table)?.reason).toBe('leased');
    expect((await store.get(table)).version).toBe(0);
    await store.releaseLease(table, lease.token);
  });

  it('another cycle leasing a table between the read and the move: that table is skipped as leased, the rest offloaded', async () => {
    await generateTrades(world.clickhouse, {
      rows: 2000,
      spanHours: 0.2,
      end: new Date(world.now.getTime() - 12 * MIN),
      seed: 5,
    });
    const store = world.deps().watermarks;
    // The other cycle read the same never-moved watermark, moved it and took the lease, all between
    // this cycle's read and its own move.
    const raced: WatermarkStore = {
      ...store,
      setCursor: async (input) => {
        if (input.table === 'bronze_trades_kraken') {
          await store.setCursor(input);
          await store.acquireLease(input.table, 'cycle-overlapping', 900);
        }
        return store.setCursor(input);
      },
    };
    const result = await runCycle(world.deps({ watermarks: raced }), {});
    const first = result.passes[0];
    expect(first?.skipped.find((s) => s.table === 'bronze_trades_kraken')).toMatchObject({
      reason: 'leased',
      detail: expect.stringMatching(/^leased by cycle-overlapping until /),
    });
    expect(result.passes.flatMap((p) => p.tables.filter((t) => t.status === 'failed'))).toEqual([]);
    const binance = result.passes.flatMap((p) => p.tables).find((t) => t.table === 'bronze_trades_binance');
    expect(binance?.rows).toBeGreaterThan(0);
    const kraken = await store.get('bronze_trades_kraken');
    expect(kraken?.lease?.holder).toBe('cycle-overlapping');
  });
  it('a store failing while the leases are taken gives back those already taken: the retry finds them free', async () => {
    const store = world.deps().watermarks;
    const taken: string[] = [];
    const failing: WatermarkStore = {
      ...store,
      acquireLease: async (table, holder, ttl) => {
        if (taken.length === 2) throw new Error('Connection terminated unexpectedly');
        const lease = await store.acquireLease(table, holder, ttl);
        if (lease.acquired) taken.push(table);
        return lease;
      },
    };
    await expect(runCycle(world.deps({ watermarks: failing }), {})).rejects.toThrow(
      'Connection terminated unexpectedly',
    );
    expect(taken).toHaveLength(2);
    for (const table of taken) expect((await store.get(table)).lease, table).toBeNull();
    const retry = await runCycle(world.deps(), {});
    const leased = retry.passes.flatMap((p) => p.skipped).filter((s) => s.reason === 'leased');
    expect(leased.filter((s) => !s.detail.includes('cycle-overlapping'))).toEqual([]);
  });
});
