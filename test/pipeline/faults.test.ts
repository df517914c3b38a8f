import { describe, expect, it } from 'vitest';
import { crashAt, FAULT_POINTS, InjectedCrash, NO_FAULTS } from '../../src/pipeline/faults.ts';

/**
 * The crash tests stand on these: a fault fires exactly where, for whom and how often it was asked,
 * and says so, so that a crash test that passes crashed where it claims to.
 */
describe('injected faults', () => {
  it('crash at their point only, for their table only, as many times as asked', () => {
    const faults = crashAt('after-iceberg-commit', { table: 'silver_trades', times: 2 });
    const hit = (point: (typeof FAULT_POINTS)[number], table: string) => () =>
      faults.hit(point, { table, batchId: 'b1' });
    expect(hit('after-stage', 'silver_trades')).not.toThrow();
    expect(hit('after-iceberg-commit', 'bronze_trades_binance')).not.toThrow();
    expect(faults.fired).toBe(0);
    expect(hit('after-iceberg-commit', 'silver_trades')).toThrow(InjectedCrash);
    expect(hit('after-iceberg-commit', 'silver_trades')).toThrow(InjectedCrash);
    expect(hit('after-iceberg-commit', 'silver_trades')).not.toThrow();
    expect(faults.fired).toBe(2);
    // Without a table or a count: any table, once.
    const once = crashAt('after-plan');
    expect(() => once.hit('after-plan', { table: 'a' })).toThrow(InjectedCrash);
    expect(() => once.hit('after-plan', { table: 'b' })).not.toThrow();
  });

  it('say where they crashed and for which batch', () => {
    const withBatch = new InjectedCrash('during-watermark', { table: 't', batchId: 'b7' });
    expect(withBatch).toMatchObject({
      name: 'InjectedCrash',
      message: 'injected crash at during-watermark (t b7)',
      point: 'during-watermark',
      context: { table: 't', batchId: 'b7' },
    });
    expect(new InjectedCrash('after-plan', { table: 't' }).message).toBe('injected crash at after-plan (t)');
  });

  it('production passes no faults: nothing fires anywhere', () => {
    for (const point of FAULT_POINTS) expect(() => NO_FAULTS.hit(point, { table: 't' })).not.toThrow();
  });
});
