import { beforeEach, describe } from 'vitest';
import { makeBatch } from '../../src/plan/batch.ts';
import type { AdvanceInput, HolderProcess, WatermarkStore } from '../../src/watermark/types.ts';
import { leaseAndAdvanceCases } from './contract-advance.ts';
import { hourlyCases } from './contract-hourly.ts';
import { leaseExtensionCases } from './contract-lease-extend.ts';
import { leaseHolderCases } from './contract-leases.ts';
import { recordCases } from './contract-records.ts';
import { type FakeClock, fakeClock } from './fake-clock.ts';

export const T0 = '2026-11-22T00:00:00.000Z';
export const T1 = '2026-11-22T00:15:00.000Z';
export const T2 = '2026-11-22T00:30:00.000Z';
export const T3 = '2026-11-22T00:45:00.000Z';

/**
 * The promise's outcome, or a failure once `ms` have passed: a refusal the store keeps retrying
 * instead of returning fails its test within seconds, not at the suite's time limit.
 */
export function within<T>(promise: Promise<T>, ms = 5_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, fail) => {
    timer = setTimeout(() => fail(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

/** The process every contract store stamps on its leases. */
export const CONTRACT_PROCESS: HolderProcess = { host: 'contract-host', pid: 4242 };

export type ContractContext = {
  /** The store and clock of the running test (fresh for each test). */
  current: () => { store: WatermarkStore; clock: FakeClock };
  /** Takes the `trades` lease or fails the test. */
  lease: (holder?: string, ttl?: number) => Promise<string>;
  /** An advance of `trades` over [start, end) with the batch id of that window. */
  batchInput: (start: string, end: string, token: string, extra?: Partial<AdvanceInput>) => AdvanceInput;
};

/**
 * The behaviour every WatermarkStore must have, run against the in-memory store and against Postgres.
 * `makeStore` returns an empty, migrated store reading time from `clock` (standing in for the
 * database's) and acting for `process`; each test starts with the tables `trades` and `candles` at T0.
 */
export function watermarkStoreContract(
  name: string,
  makeStore: (clock: () => Date, process: HolderProcess) => Promise<WatermarkStore>,
) {
  describe(`WatermarkStore contract: ${name}`, () => {
    let state: { store: WatermarkStore; clock: FakeClock } | undefined;
    const current = () => {
      if (!state) throw new Error('no store: the contract setup did not run');
      return state;
    };

    beforeEach(async () => {
      const clock = fakeClock();
      const store = await makeStore(clock.now, CONTRACT_PROCESS);
      await store.ensureTables([
        { table: 'trades', initialCursor: T0 },
        { table: 'candles', initialCursor: T0 },
      ]);
      state = { store, clock };
    });

    const ctx: ContractContext = {
      current,
      lease: async (holder = 'cycle-a', ttl = 300) => {
        const got = await current().store.acquireLease('trades', holder, ttl);
        if (!got.acquired) throw new Error(`lease not acquired: held by ${got.holder}`);
        return got.token;
      },
      batchInput: (start, end, token, extra = {}) => ({
        ...makeBatch('trades', start, end),
        leaseToken: token,
        rows: 100,
        files: 2,
        bytes: 4096,
        durationMs: 1500,
        outcome: 'committed',
        ...extra,
      }),
    };
    leaseAndAdvanceCases(ctx);
    leaseHolderCases(ctx);
    leaseExtensionCases(ctx);
    recordCases(ctx);
    hourlyCases(ctx);
  });
}
