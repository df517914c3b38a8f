import { describe, expect, it } from 'vitest';
import { shorten } from '../../src/errors.ts';
import type { EmfRecord } from '../../src/metrics/emf.ts';
import type { PipelineDeps } from '../../src/pipeline/deps.ts';
import { type PublishInput, publishCycle } from '../../src/pipeline/publish-cycle.ts';

const NOW = new Date('2026-12-06T10:00:00.000Z');

/**
 * Publishing reads only the clock, the metrics sink, the log and, on a cycle's last pass, the watermark
 * store (the per-hour check). The store here is down: the check then logs and publishes nothing of its
 * own, which also shows whether it ran.
 */
function publisher() {
  const records: EmfRecord[] = [];
  const logs: Array<Record<string, unknown>> = [];
  const deps = {
    clock: () => NOW,
    metrics: (batch: EmfRecord[]) => records.push(...batch),
    log: (line: Record<string, unknown>) => logs.push(line),
    config: { tables: [] },
    watermarks: {
      list: async () => {
        throw new Error('connect ECONNREFUSED 127.0.0.1:5432');
      },
    },
  } as unknown as PipelineDeps;
  const byDimension = (name: string) =>
    records
      .filter((r) => r.dimensions && name in r.dimensions)
      .map((r) => ({ ...r.dimensions, ...r.values }));
  return { deps, records, logs, byDimension };
}

const input = (over: Partial<PublishInput>): PublishInput => ({
  cycleId: 'cycle-7',
  cycleStartedAt: '2026-12-06T09:59:30.000Z',
  pass: 1,
  final: false,
  more: false,
  skipped: [],
  layers: [],
  ...over,
});

const succeeded = (table: string, layer: string, batches: Array<{ rows: number; stageMs: number }>) => ({
  table,
  layer,
  status: 'succeeded' as const,
  batches,
});

/** Two batches, 150 rows staged in 3 s. */
const binance = succeeded('bronze_trades_binance', 'bronze', [
  { rows: 100, stageMs: 2000 },
  { rows: 50, stageMs: 1000 },
]);

describe('publishing a pass of a cycle', () => {
  it('sums rows per table and for the cycle; a table failed in its run or at planning is a failed table, with its error shortened; a leased one is not counted', async () => {
    const { deps } = publisher();
    const cause = `the catalog refused the commit: ${'metadata conflict; '.repeat(40)}`;
    const summary = await publishCycle(
      deps,
      input({
        layers: [
          [
            binance,
            {
              table: 'bronze_trades_kraken',
              layer: 'bronze',
              status: 'failed',
              error: { Error: 'CommitConflictError', Cause: cause },
            },
          ],
          [succeeded('silver_trades', 'silver', [{ rows: 30, stageMs: 500 }])],
        ],
        skipped: [
          { table: 'gold_ohlcv_1m', reason: 'failed', detail: 'metadata location moved' },
          { table: 'bronze_trades_coinbase', reason: 'leased', detail: 'another cycle holds it' },
        ],
      }),
    );
    expect(summary).toEqual({
      cycleId: 'cycle-7',
      pass: 1,
      final: false,
      status: 'partial',
      rows: 180,
      tables: [
        { table: 'bronze_trades_binance', status: 'succeeded', batches: 2, rows: 150 },
        {
          table: 'bronze_trades_kraken',
          status: 'failed',
          batches: 0,
          rows: 0,
          error: shorten(`CommitConflictError: ${cause}`, 400),
        },
        { table: 'silver_trades', status: 'succeeded', batches: 1, rows: 30 },
        { table: 'gold_ohlcv_1m', status: 'failed', batches: 0, rows: 0, error: 'metadata location moved' },
      ],
      skipped: [
        { table: 'gold_ohlcv_1m', reason: 'failed', detail: 'metadata location moved' },
        { table: 'bronze_trades_coinbase', reason: 'leased', detail: 'another cycle holds it' },
      ],
    });
    expect(summary.tables[1]?.error).toHaveLength(400);
    // An error without a cause (a Step Functions timeout) is named by its error alone.
    const timeout = await publishCycle(
      deps,
      input({
        layers: [
          [{ table: 'gold_ohlcv_1m', layer: 'gold', status: 'failed', error: { Error: 'States.Timeout' } }],
        ],
      }),
    );
    expect(timeout.tables[0]?.error).toBe('States.Timeout: ');
  });

  it('the cycle is failed when every table failed (the plan failing one counts), succeeded when none did, whatever was skipped', async () => {
    const { deps } = publisher();
    const failed = { table: 'bronze_trades_kraken', layer: 'bronze', status: 'failed' as const };
    const planFailed = { table: 'gold_ohlcv_1m', reason: 'failed' as const, detail: 'no such table' };
    const leased = { table: 'bronze_trades_coinbase', reason: 'leased' as const, detail: 'held' };
    const status = async (over: Partial<PublishInput>) => (await publishCycle(deps, input(over))).status;
    expect(await status({ layers: [[failed]], skipped: [planFailed] })).toBe('failed');
    expect(await status({ skipped: [planFailed] })).toBe('failed');
    expect(await status({ layers: [[failed, succeeded('silver_trades', 'silver', [])]] })).toBe('partial');
    expect(
      await status({ layers: [[succeeded('silver_trades', 'silver', [])]], skipped: [planFailed] }),
    ).toBe('partial');
    expect(await status({ layers: [[succeeded('silver_trades', 'silver', [])]], skipped: [leased] })).toBe(
      'succeeded',
    );
    // Nothing to do at all (every table up to date or leased) is a succeeded cycle, not a failed one.
    expect(await status({ skipped: [leased] })).toBe('succeeded');
  });

  it('publishes rows and staging time per succeeded table and per layer, rows per second only where both are above zero', async () => {
    const { deps, records, byDimension } = publisher();
    await publishCycle(
      deps,
      input({
        layers: [
          [
            binance,
            succeeded('bronze_trades_coinbase', 'bronze', [{ rows: 0, stageMs: 400 }]),
            // Batches of a table that then failed: counted in the cycle's rows, not in its metrics.
            {
              table: 'bronze_trades_kraken',
              layer: 'bronze',
              status: 'failed',
              batches: [{ rows: 70, stageMs: 900 }],
              error: { Error: 'X' },
            },
          ],
          [
            succeeded('silver_trades', 'silver', []),
            succeeded('gold_ohlcv_1m', 'silver', [{ rows: 5, stageMs: 0 }]),
          ],
        ],
      }),
    );
    expect(byDimension('Table')).toEqual([
      { Table: 'bronze_trades_binance', rows: 150, tableDurationSeconds: 3, rowsPerSecond: 50 },
      { Table: 'bronze_trades_coinbase', rows: 0, tableDurationSeconds: 0.4 },
      { Table: 'silver_trades', rows: 0, tableDurationSeconds: 0 },
      { Table: 'gold_ohlcv_1m', rows: 5, tableDurationSeconds: 0 },
    ]);
    // A layer that staged nothing for any time (silver: no batch) publishes no staging record.
    expect(byDimension('Layer')).toEqual([{ Layer: 'bronze', stagedRows: 150, stagingSeconds: 3.4 }]);
    // Not the last pass: no cycle record yet.
    expect(byDimension('Status')).toEqual([]);
    for (const r of records) {
      expect(r.timestamp).toBe(NOW.getTime());
      expect(r.properties).toEqual({ cycleId: 'cycle-7' });
    }
  });

  it('the last pass publishes the cycle (status, duration from its start, rows) and runs the per-hour check, whose failure still publishes', async () => {
    const last = publisher();
    const layers = [[succeeded('bronze_trades_binance', 'bronze', [{ rows: 40, stageMs: 100 }])]];
    const summary = await publishCycle(last.deps, input({ pass: 3, final: true, layers }));
    expect(summary).toMatchObject({ pass: 3, final: true, status: 'succeeded', rows: 40 });
    expect(last.byDimension('Status')).toEqual([
      { Status: 'succeeded', cycles: 1, cycleDurationSeconds: 30, cycleRows: 40 },
    ]);
    expect(last.records.map((r) => r.properties)).toEqual([
      { cycleId: 'cycle-7' },
      { cycleId: 'cycle-7' },
      { cycleId: 'cycle-7' },
    ]);
    expect(last.logs).toEqual([
      { event: 'hourly-check-failed', table: '*', message: 'connect ECONNREFUSED 127.0.0.1:5432' },
    ]);
    // An earlier pass of the same cycle: neither.
    const earlier = publisher();
    await publishCycle(earlier.deps, input({ pass: 2, final: false, more: true, layers }));
    expect(earlier.byDimension('Status')).toEqual([]);
    expect(earlier.logs).toEqual([]);
  });

  it('refuses a malformed pass, naming the field', async () => {
    const { deps, records } = publisher();
    await expect(publishCycle(deps, { ...input({}), pass: 0 })).rejects.toThrow(
      /^PublishCycle input is malformed: pass/,
    );
    expect(records).toEqual([]);
  });
});
