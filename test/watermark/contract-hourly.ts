import { expect, it } from 'vitest';
import { addChecksums } from '../../src/watermark/hourly-types.ts';
import type { ContractContext } from './contract.ts';
import { T0, T1, T2, T3 } from './contract.ts';

const H0 = '2026-11-22T00:00:00.000Z';
const H1 = '2026-11-22T01:00:00.000Z';

/** The hourly ledger: what each batch committed per hour, and the last per-hour check. */
export function hourlyCases({ current }: ContractContext) {
  it('records a batch once: a replay of the same batch id changes nothing', async () => {
    const { store } = current();
    const entry = {
      table: 'trades',
      batchId: 'b1',
      kind: 'offload' as const,
      windowStart: T0,
      windowEnd: T1,
      hours: [{ hour: H0, rows: 10, checksum: '0' }],
    };
    expect(await store.recordHours(entry)).toEqual({ recorded: true });
    expect(await store.recordHours({ ...entry, hours: [{ hour: H0, rows: 99, checksum: '0' }] })).toEqual({
      recorded: false,
    });
    const [got, ...rest] = await store.ledger('trades', { from: T0, to: H1 });
    expect(rest).toEqual([]);
    expect(got).toMatchObject({ batchId: 'b1', kind: 'offload', windowStart: T0, windowEnd: T1 });
    expect(got?.hours).toEqual([{ hour: H0, rows: 10, checksum: '0' }]);
  });

  it('forgets the batches above a cursor moved back: Iceberg no longer holds them, they are committed again', async () => {
    const { store } = current();
    const at = (batchId: string, windowStart: string, windowEnd: string) =>
      store.recordHours({ table: 'trades', batchId, kind: 'offload', windowStart, windowEnd, hours: [] });
    await at('b1', T0, T1);
    await at('b2', T1, T2);
    await at('b3', T2, T3);
    await store.setCursor({
      table: 'trades',
      cursor: T3,
      actor: 'ops',
      reason: 'skip',
      allowBackwards: false,
    });
    await store.setCursor({
      table: 'trades',
      cursor: T1,
      actor: 'ops',
      reason: 'restored',
      allowBackwards: true,
    });
    expect((await store.ledger('trades', { from: T0, to: T3 })).map((e) => e.batchId)).toEqual(['b1']);
  });

  it('returns the entries whose window overlaps the range, oldest window first, per table', async () => {
    const { store } = current();
    const at = (batchId: string, windowStart: string, windowEnd: string, table = 'trades') =>
      store.recordHours({ table, batchId, kind: 'offload', windowStart, windowEnd, hours: [] });
    await at('b2', T1, T2);
    await at('b1', T0, T1);
    await at('b3', T2, T3);
    await at('c1', T0, T3, 'candles');
    const ids = async (from: string, to: string) =>
      (await store.ledger('trades', { from, to })).map((e) => e.batchId);
    expect(await ids(T0, T3)).toEqual(['b1', 'b2', 'b3']);
    // Half-open windows: [T0, T1) does not overlap a range starting at T1.
    expect(await ids(T1, T2)).toEqual(['b2']);
    expect(await ids(T3, H1)).toEqual([]);
  });

  it('refuses an unknown table and an inverted window', async () => {
    const { store } = current();
    const entry = { batchId: 'x', kind: 'repair' as const, hours: [] };
    await expect(
      store.recordHours({ ...entry, table: 'nope', windowStart: T0, windowEnd: T1 }),
    ).rejects.toMatchObject({ name: 'InputError' });
    const inverted = store.recordHours({ ...entry, table: 'trades', windowStart: T1, windowEnd: T0 });
    await expect(inverted).rejects.toThrow(`ledger window [${T1}, ${T0}) is inverted`);
    await expect(inverted).rejects.toMatchObject({ details: { table: 'trades', batchId: 'x' } });
    // An empty window is not inverted: a batch over no time is recorded like any other.
    expect(
      await store.recordHours({
        ...entry,
        table: 'trades',
        batchId: 'empty',
        windowStart: T1,
        windowEnd: T1,
      }),
    ).toEqual({ recorded: true });
    await expect(
      store.recordHours({ ...entry, table: 'trades', windowStart: 'dawn', windowEnd: T1 }),
    ).rejects.toThrow(/^windowStart: "dawn"/);
    await expect(
      store.recordHours({ ...entry, table: 'trades', windowStart: T0, windowEnd: 'dusk' }),
    ).rejects.toThrow(/^windowEnd: "dusk"/);
    const hours = [{ hour: 'noon', rows: 1, checksum: '1' }];
    await expect(
      store.recordHours({ ...entry, table: 'trades', windowStart: T0, windowEnd: T1, hours }),
    ).rejects.toThrow(/^hour: "noon"/);
  });

  it('refuses a ledger kind it does not know, naming the kinds it does', async () => {
    const { store } = current();
    const unknown = store.recordHours({
      table: 'trades',
      batchId: 'x',
      kind: 'backfill' as 'repair',
      windowStart: T0,
      windowEnd: T1,
      hours: [],
    });
    await expect(unknown).rejects.toMatchObject({
      name: 'InputError',
      message: 'ledger kind "backfill" is not one of offload, repair',
      details: { table: 'trades' },
    });
    expect(await store.ledger('trades', { from: T0, to: T1 })).toEqual([]);
  });

  it('keeps the latest check per table', async () => {
    const { store } = current();
    expect(await store.lastCheck('trades')).toBeNull();
    const mismatch = {
      hour: H0,
      clickhouseRows: 12,
      committedRows: 10,
      clickhouseChecksum: '0',
      committedChecksum: '0',
    };
    const check = {
      table: 'trades',
      checkedAt: T2,
      from: H0,
      to: H1,
      checkedHours: 1,
      mismatches: [mismatch],
    };
    await store.recordCheck(check);
    expect(await store.lastCheck('trades')).toEqual(check);
    await store.recordCheck({ ...check, checkedAt: T3, mismatches: [] });
    expect(await store.lastCheck('trades')).toEqual({ ...check, checkedAt: T3, mismatches: [] });
    expect(await store.lastCheck('candles')).toBeNull();
  });

  it('checksums add modulo 2^64, and subtracting a hash undoes adding it', () => {
    const max = (2n ** 64n - 1n).toString();
    expect(addChecksums(max, '2')).toBe('1');
    expect(addChecksums('5', '-7')).toBe((2n ** 64n - 2n).toString());
    expect(addChecksums(addChecksums('123', max), `-${max}`)).toBe('123');
  });
}
