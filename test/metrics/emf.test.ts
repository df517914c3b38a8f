import { describe, expect, it } from 'vitest';
import { renderEmf, renderEmfLines } from '../../src/metrics/emf.ts';
import { ALARM_NAMES, DIMENSIONS, METRICS, METRICS_NAMESPACE } from '../../src/metrics/names.ts';

const T = Date.parse('2026-11-22T03:15:00Z');

describe('metric names', () => {
  it('are unique, so no two emitters write one series meaning two things', () => {
    const names = Object.values(METRICS).map((m) => m.name);
    expect(new Set(names).size).toBe(names.length);
    expect(new Set(Object.values(ALARM_NAMES)).size).toBe(Object.values(ALARM_NAMES).length);
  });

  it('publish every per-table metric also without dimensions, the series the alarms watch', () => {
    for (const metric of Object.values(METRICS)) {
      expect(
        metric.dimensionSets.some((set) => set.length === 0),
        metric.name,
      ).toBe(true);
    }
  });
});

describe('renderEmf', () => {
  it('renders a line CloudWatch turns into per-table and across-tables metrics', () => {
    const line = renderEmf({
      timestamp: T,
      dimensions: { [DIMENSIONS.table]: 'bronze_trades_binance' },
      values: { lagMinutes: 12.5, ttlHeadroomHours: 150, consecutiveFailures: 0 },
      properties: { cycleId: 'c-1' },
    });
    expect(line).not.toContain('\n');
    const doc = JSON.parse(line);
    expect(doc._aws.Timestamp).toBe(T);
    expect(doc._aws.CloudWatchMetrics).toEqual([
      {
        Namespace: METRICS_NAMESPACE,
        Dimensions: [['Table'], []],
        Metrics: [
          { Name: 'LagMinutes', Unit: 'None' },
          { Name: 'TtlHeadroomHours', Unit: 'None' },
          { Name: 'ConsecutiveFailures', Unit: 'Count' },
        ],
      },
    ]);
    expect(doc).toMatchObject({
      Table: 'bronze_trades_binance',
      LagMinutes: 12.5,
      TtlHeadroomHours: 150,
      ConsecutiveFailures: 0,
      cycleId: 'c-1',
    });
  });

  it('publishes only the dimension sets whose values are present', () => {
    const doc = JSON.parse(
      renderEmf({ timestamp: T, dimensions: { ErrorType: 'UnavailableError' }, values: { errors: 1 } }),
    );
    expect(doc._aws.CloudWatchMetrics[0].Dimensions).toEqual([['ErrorType'], []]);
    const cycle = JSON.parse(
      renderEmf({ timestamp: T, values: { cyclesStarted: 1, cycleDurationSeconds: 42, cycles: 1 } }),
    );
    expect(cycle._aws.CloudWatchMetrics.map((d: { Dimensions: unknown }) => d.Dimensions)).toEqual([[[]]]);
  });

  it('groups metrics by dimension sets into separate directives', () => {
    const doc = JSON.parse(
      renderEmf({
        timestamp: T,
        dimensions: { Status: 'partial' },
        values: { cycles: 1, cycleDurationSeconds: 30 },
      }),
    );
    expect(doc._aws.CloudWatchMetrics).toHaveLength(2);
    expect(doc._aws.CloudWatchMetrics[0]).toMatchObject({ Dimensions: [['Status'], []] });
    expect(doc._aws.CloudWatchMetrics[1]).toMatchObject({ Dimensions: [[]] });
  });

  it('refuses values CloudWatch would drop, naming the metric', () => {
    expect(() => renderEmf({ timestamp: T, values: { cycleDurationSeconds: Number.NaN } })).toThrow(
      /CycleDurationSeconds: NaN is not a finite number/,
    );
    expect(() =>
      renderEmf({ timestamp: T, dimensions: { Table: 'x' }, values: {}, properties: { Table: 'y' } }),
    ).toThrow(/collides/);
    expect(() => renderEmf({ timestamp: -1, values: {} })).toThrow(/epoch milliseconds/);
  });

  it('renders newline-terminated lines for a batch of records', () => {
    const text = renderEmfLines([
      { timestamp: T, dimensions: { Table: 'a' }, values: { rows: 10 } },
      { timestamp: T, dimensions: { Table: 'b' }, values: { rows: 0 } },
    ]);
    const lines = text.split('\n');
    expect(lines).toHaveLength(3);
    expect(lines[2]).toBe('');
    expect(JSON.parse(lines[1] ?? '')).toMatchObject({ Table: 'b', RowsOffloaded: 0 });
  });
});
