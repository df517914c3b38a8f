import { describe, expect, it } from 'vitest';
import { defaultConfig, tableByName } from '../../src/config/load.ts';
import {
  DEFAULT_THRESHOLDS,
  type HealthReport,
  healthRecords,
  type TableHealth,
  tableProblems,
} from '../../src/pipeline/health.ts';

/**
 * What `status` tells the operator about a table, word for word: each rule's message names the numbers
 * it judged and what to do, and each limit is "over", not "at". The facts themselves are measured on
 * real components in health.test.ts; here, from fixed facts, the words.
 */
const table = tableByName(defaultConfig(), 'bronze_trades_binance');
const healthy: TableHealth = {
  table: table.name,
  layer: 'bronze',
  cursor: '2026-11-22T11:55:00.000Z',
  lagMinutes: 5,
  watermarkAgeSeconds: 300,
  lastSuccessAt: '2026-11-22T11:55:00.000Z',
  lastCheckedAt: null,
  status: 'idle',
  consecutiveFailures: 0,
  lastError: null,
  lease: null,
  pendingRows: 10,
  oldestPending: '2026-11-22T11:55:01.000Z',
  ttlHeadroomHours: 160,
  iceberg: {
    table: 'cold.bronze_trades_binance',
    exists: true,
    newestWindowEnd: '2026-11-22T11:55:00.000Z',
    newestBatchId: 'b1',
    behind: null,
  },
};
const problems = (facts: Partial<TableHealth>) =>
  tableProblems({ ...healthy, ...facts }, table, DEFAULT_THRESHOLDS).map((p) => [
    p.severity,
    p.code,
    p.message,
  ]);

describe("status's words for a table", () => {
  it('a healthy table has none', () => {
    expect(problems({})).toEqual([]);
  });

  it('lag: the minutes and the limit passed', () => {
    expect(problems({ lagMinutes: 31 })).toEqual([['critical', 'lag', 'lag 31 min is over 30 min']]);
    expect(problems({ lagMinutes: 21 })).toEqual([['warning', 'lag', 'lag 21 min is over 20 min']]);
  });

  it('failures: how many in a row and the last error; a refused schema names its runbook', () => {
    const lastError = { name: 'UnavailableError', message: 'Postgres is down' };
    expect(problems({ consecutiveFailures: 1, lastError })).toEqual([
      ['warning', 'failures', '1 failed pass(es) in a row: UnavailableError: Postgres is down'],
    ]);
    expect(problems({ consecutiveFailures: 3, lastError: null })).toEqual([
      ['critical', 'failures', '3 failed passes in a row'],
    ]);
    const drift = { name: 'SchemaDriftError', message: 'column price changed\n  from Float64 to Decimal' };
    expect(problems({ consecutiveFailures: 1, lastError: drift })).toEqual([
      [
        'critical',
        'schema',
        'the table is stopped by a schema change: column price changed from Float64 to Decimal (docs/runbooks/schema-changes.md)',
      ],
    ]);
  });

  it('never run, or stale: what to run, how long ago and the limit', () => {
    expect(problems({ watermarkAgeSeconds: null })).toEqual([
      ['critical', 'never-run', 'no pass has completed yet; run a cycle (k2-offload run)'],
    ]);
    expect(problems({ watermarkAgeSeconds: 3 * 3600 + 100 })).toEqual([
      ['critical', 'stale', 'last completed pass 182 min ago (over 60 min)'],
    ]);
  });

  it('TTL: the days it keeps and the hours left', () => {
    expect(problems({ ttlHeadroomHours: 23 })).toEqual([
      ['critical', 'ttl', 'oldest row not in Iceberg is deleted by the 7-day TTL in 23 h'],
    ]);
  });

  it('a stale lease: whose, since when, and the command that frees it', () => {
    const lease = {
      holder: 'cycle-a',
      expiresAt: '2026-11-22T11:00:00.000Z',
      live: false,
      host: 'ip-10-0-0-1',
      pid: 4242,
      startedAt: '2026-11-22T10:45:00.000Z',
    };
    expect(problems({ lease })).toEqual([
      [
        'critical',
        'lease-stale',
        'lease of cycle-a (ip-10-0-0-1 pid 4242) expired at 2026-11-22T11:00:00.000Z and was never released: its holder died or hangs. The next cycle takes it over; if the holder is gone, k2-offload watermark release --table bronze_trades_binance --reason "..."',
      ],
    ]);
  });

  it('a value at its limit is not over it: no problem, or the milder one', () => {
    expect(problems({ lagMinutes: 30 })).toEqual([['warning', 'lag', 'lag 30 min is over 20 min']]);
    expect(problems({ lagMinutes: 20 })).toEqual([]);
    expect(problems({ watermarkAgeSeconds: 3600 })).toEqual([]);
    expect(problems({ ttlHeadroomHours: 24 })).toEqual([]);
    expect(problems({ consecutiveFailures: 2 })).toEqual([
      ['warning', 'failures', '2 failed pass(es) in a row'],
    ]);
  });

  it('no failure since a schema refusal, or no watermark row at all, is not a problem of its own', () => {
    const drift = { name: 'SchemaDriftError', message: 'column price changed' };
    expect(problems({ consecutiveFailures: 0, lastError: drift })).toEqual([]);
    // Without a row the table is reported as having none (collectHealth), not as never run.
    expect(problems({ cursor: null, watermarkAgeSeconds: null, lagMinutes: null })).toEqual([]);
  });

  it('a stale lease of a holder that did not say its host names the holder alone', () => {
    const lease = {
      holder: 'k2-offload watermark rewind',
      expiresAt: '2026-11-22T11:00:00.000Z',
      live: false,
      host: null,
      pid: null,
      startedAt: null,
    };
    expect(problems({ lease })[0]?.[2]).toMatch(
      /^lease of k2-offload watermark rewind expired at 2026-11-22T11:00:00.000Z and was never released/,
    );
  });

  it('Iceberg behind or ahead of the watermark: what it holds and the next step', () => {
    const behind = 'Iceberg lacks batch b9';
    expect(problems({ iceberg: { ...healthy.iceberg, behind } })).toEqual([
      [
        'critical',
        'iceberg-behind',
        'Iceberg lacks batch b9; the table is stopped: k2-offload watermark rewind --table bronze_trades_binance --reason "..." (docs/runbooks/iceberg-behind.md)',
      ],
    ]);
    const ahead = { ...healthy.iceberg, newestWindowEnd: '2026-11-22T12:00:00.000Z', newestBatchId: 'b2' };
    expect(problems({ iceberg: ahead })).toEqual([
      [
        'critical',
        'iceberg-ahead',
        'Iceberg holds rows up to 2026-11-22T12:00:00.000Z (batch b2), past the watermark 2026-11-22T11:55:00.000Z; the next cycle reconciles',
      ],
    ]);
  });
});

describe('the metrics the alarms watch', () => {
  const report = (tables: TableHealth[]) =>
    ({ checkedAt: '2026-11-22T12:00:00.000Z', tables }) as unknown as HealthReport;

  it("publish each table's lag, pass age, TTL headroom, failures and whether Iceberg is behind", () => {
    const behind = { ...healthy, table: 'b', iceberg: { ...healthy.iceberg, behind: 'Iceberg lacks b9' } };
    expect(healthRecords(report([healthy, behind]))).toEqual([
      {
        timestamp: Date.parse('2026-11-22T12:00:00.000Z'),
        dimensions: { Table: 'bronze_trades_binance' },
        values: {
          lagMinutes: 5,
          watermarkAgeSeconds: 300,
          ttlHeadroomHours: 160,
          consecutiveFailures: 0,
          icebergBehind: 0,
        },
      },
      {
        timestamp: Date.parse('2026-11-22T12:00:00.000Z'),
        dimensions: { Table: 'b' },
        values: {
          lagMinutes: 5,
          watermarkAgeSeconds: 300,
          ttlHeadroomHours: 160,
          consecutiveFailures: 0,
          icebergBehind: 1,
        },
      },
    ]);
  });

  it('leave out what is not known (no number stands for an unknown), Iceberg behind even when its table is unknown', () => {
    const unknown: TableHealth = {
      ...healthy,
      lagMinutes: null,
      watermarkAgeSeconds: null,
      ttlHeadroomHours: null,
      consecutiveFailures: null,
      iceberg: { ...healthy.iceberg, exists: null },
    };
    expect(healthRecords(report([unknown]))[0]?.values).toEqual({});
    const lost = { ...unknown, iceberg: { ...unknown.iceberg, behind: 'the catalog has no table' } };
    expect(healthRecords(report([lost]))[0]?.values).toEqual({ icebergBehind: 1 });
  });
});
