import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateTrades } from '../../src/clickhouse/demo-trades.ts';
import { defaultConfig, parseConfig } from '../../src/config/load.ts';
import {
  collectHealth,
  type HealthReport,
  healthRecords,
  reachableBound,
} from '../../src/pipeline/health.ts';
import { runCycle } from '../../src/pipeline/local-runner.ts';
import type { Watermark } from '../../src/watermark/types.ts';
import { openWorld, type World } from '../support/world.ts';

/**
 * What `status` and the health function call red, amber or green, rule by rule and at each threshold's
 * edge: on real chDB, Postgres and Iceberg, with the table's watermark row as Postgres would return it.
 * A rule that stays quiet while rows are missing is the defect this file is here to catch.
 */
const TABLE = 'bronze_trades_binance';
const config = parseConfig({ tables: defaultConfig().tables.filter((t) => t.name === TABLE) }, 'one table');
const table = config.tables[0] as (typeof config.tables)[number];
const MIN = 60_000;
const HOUR = 60 * MIN;

let world: World;
/** The rows of the last half hour, committed by the cycle of the second part. */
let recentRows = 0;
let bound: number;
const iso = (ms: number) => new Date(ms).toISOString();

/** A table offloaded up to what it can reach, its last pass a minute ago: nothing to report. */
const settled = (): Watermark => ({
  table: TABLE,
  cursor: iso(bound),
  version: 4,
  status: 'ok',
  lastBatchId: 'b4',
  lastMarkerBatchId: null,
  lastSuccessAt: iso(world.now.getTime() - MIN),
  lastCheckedAt: null,
  lastRows: 10,
  lastDurationMs: 1000,
  consecutiveFailures: 0,
  lastError: null,
  lease: null,
  leaseToken: '4',
  iceberg: null,
});

/** Health with the table's watermark row as given, Postgres's clock at `dbNow` (default: the process's). */
async function healthOf(
  row: Partial<Watermark>,
  options: { dbNow?: number; health?: Parameters<typeof collectHealth>[1] } = {},
): Promise<HealthReport> {
  const deps = world.deps();
  const watermarks = Object.create(deps.watermarks) as typeof deps.watermarks;
  watermarks.list = async () => [{ ...settled(), ...row }];
  watermarks.now = async () => iso(options.dbNow ?? world.now.getTime());
  return collectHealth({ ...deps, watermarks }, options.health);
}
const problems = (report: HealthReport) =>
  report.problems.map((p) => ({ severity: p.severity, code: p.code, table: p.table }));
const tableProblem = (severity: string, code: string) => ({ severity, code, table: TABLE });

beforeAll(async () => {
  world = await openWorld({ config });
  bound = reachableBound(table, world.now);
});
afterAll(() => world?.close());

describe('health of a table whose Iceberg table does not exist yet', () => {
  it('a table offloaded up to its bound and passed a minute ago is green, with nothing to report', async () => {
    const report = await healthOf({});
    expect(problems(report)).toEqual([]);
    expect(report.healthy).toBe(true);
    expect(report.components.map((c) => [c.name, c.ok])).toEqual([
      ['clickhouse', true],
      ['postgres', true],
      ['catalog', true],
    ]);
    expect(report.tables[0]).toMatchObject({ lagMinutes: 0, pendingRows: 0, watermarkAgeSeconds: 60 });
  });

  it('a table the configuration names before any cycle has made its row is amber, not red', async () => {
    const deps = world.deps();
    const watermarks = Object.create(deps.watermarks) as typeof deps.watermarks;
    watermarks.list = async () => [];
    const report = await collectHealth({ ...deps, watermarks });
    expect(problems(report)).toEqual([tableProblem('warning', 'no-watermark')]);
    expect(report.problems[0]?.message).toBe(
      'no watermark row yet: the first cycle creates it at the initial cursor',
    );
    expect(report.healthy).toBe(true);
  });

  it('lag is amber past the warning threshold and red only past the critical one', async () => {
    const at = async (minutes: number) => {
      const report = await healthOf({ cursor: iso(bound - minutes * MIN) });
      return { lag: report.tables[0]?.lagMinutes, problems: problems(report), healthy: report.healthy };
    };
    expect(await at(20)).toEqual({ lag: 20, problems: [], healthy: true });
    expect(await at(20.5)).toEqual({ lag: 20.5, problems: [tableProblem('warning', 'lag')], healthy: true });
    expect(await at(30)).toEqual({ lag: 30, problems: [tableProblem('warning', 'lag')], healthy: true });
    expect(await at(30.5)).toEqual({
      lag: 30.5,
      problems: [tableProblem('critical', 'lag')],
      healthy: false,
    });
  });

  it('failed passes are amber until the third in a row, which is red; each names the last error', async () => {
    const lastError = { name: 'UnavailableError', message: 'ClickHouse at http://ch:8123 did not answer' };
    for (const [failures, severity] of [
      [1, 'warning'],
      [2, 'warning'],
      [3, 'critical'],
      [7, 'critical'],
    ] as const) {
      const report = await healthOf({ consecutiveFailures: failures, lastError, status: 'failed' });
      expect(problems(report), `${failures} failures`).toEqual([tableProblem(severity, 'failures')]);
      expect(report.problems[0]?.message).toContain(`${failures} failed pass`);
      expect(report.problems[0]?.message).toContain(
        'UnavailableError: ClickHouse at http://ch:8123 did not answer',
      );
      expect(report.healthy).toBe(severity === 'warning');
    }
    // The error of a failure since recovered from is history, not a problem.
    expect(problems(await healthOf({ consecutiveFailures: 0, lastError }))).toEqual([]);
  });

  it('a schema change the offload refuses is red from its first failure and points to the runbook', async () => {
    const lastError = {
      name: 'SchemaDriftError',
      message: 'column price changed\n  from Decimal to Float64',
    };
    const report = await healthOf({ consecutiveFailures: 1, lastError, status: 'failed' });
    expect(problems(report)).toEqual([tableProblem('critical', 'schema')]);
    expect(report.problems[0]?.message).toContain('column price changed from Decimal to Float64');
    expect(report.problems[0]?.message).toContain('docs/runbooks/schema-changes.md');
    expect(problems(await healthOf({ consecutiveFailures: 0, lastError }))).toEqual([]);
  });

  it('a table that never completed a pass is red; one whose last pass is over an hour old is red', async () => {
    expect(problems(await healthOf({ lastSuccessAt: null, lastCheckedAt: null }))).toEqual([
      tableProblem('critical', 'never-run'),
    ]);
    const passed = (secondsAgo: number) => iso(world.now.getTime() - secondsAgo * 1000);
    expect(problems(await healthOf({ lastSuccessAt: passed(3600) }))).toEqual([]);
    expect(problems(await healthOf({ lastSuccessAt: passed(3601) }))).toEqual([
      tableProblem('critical', 'stale'),
    ]);
    // A pass that found nothing new counts as much as a commit: the newer of the two is the age.
    const checkedSince = await healthOf({ lastSuccessAt: passed(5 * 3600), lastCheckedAt: passed(120) });
    expect(problems(checkedSince)).toEqual([]);
    expect(checkedSince.tables[0]?.watermarkAgeSeconds).toBe(120);
  });

  it('a lease is stale by the database clock that granted it, whatever the checking process says', async () => {
    const lease = {
      holder: 'cycle-1',
      token: '5',
      expiresAt: iso(world.now.getTime() + 5 * MIN),
      host: 'worker-7',
      pid: 4242,
      startedAt: iso(world.now.getTime() - 10 * MIN),
    };
    // Postgres 10 minutes ahead of this process: the lease it granted has expired.
    const expired = await healthOf({ lease }, { dbNow: world.now.getTime() + 10 * MIN });
    expect(problems(expired)).toEqual([tableProblem('critical', 'lease-stale')]);
    expect(expired.problems[0]?.message).toContain('cycle-1 (worker-7 pid 4242)');
    expect(expired.problems[0]?.message).toContain(`k2-offload watermark release --table ${TABLE}`);
    expect(expired.tables[0]?.lease?.live).toBe(false);
    // At the very instant it expires, as the store frees it then.
    const atExpiry = await healthOf({ lease }, { dbNow: Date.parse(lease.expiresAt) });
    expect(problems(atExpiry)).toEqual([tableProblem('critical', 'lease-stale')]);
    // Postgres 10 minutes behind this process, whose own clock is past the expiry: still live.
    const behindClock = { ...lease, expiresAt: iso(world.now.getTime() - 5 * MIN) };
    const live = await healthOf({ lease: behindClock }, { dbNow: world.now.getTime() - 10 * MIN });
    expect(problems(live)).toEqual([]);
    expect(live.tables[0]?.lease?.live).toBe(true);
  });

  it('a watermark whose batches were committed, with no table in this catalog, is red: Iceberg is behind', async () => {
    const report = await healthOf({ lastMarkerBatchId: 'b3' });
    expect(problems(report)).toEqual([tableProblem('critical', 'iceberg-behind')]);
    expect(report.problems[0]?.message).toContain('has no table at');
    expect(report.problems[0]?.message).toContain(`k2-offload watermark rewind --table ${TABLE}`);
    expect(healthRecords(report)[0]?.values.icebergBehind).toBe(1);
    // Committed through another catalog: the same, naming where the history is.
    const elsewhere = await healthOf({ iceberg: { catalog: 'glue', location: 's3://other/cold/t' } });
    expect(problems(elsewhere)).toEqual([tableProblem('critical', 'iceberg-behind')]);
    expect(elsewhere.problems[0]?.message).toContain('history in the glue catalog at s3://other/cold/t');
  });
});

describe('health of a table with Iceberg commits', () => {
  let committed: Watermark;
  beforeAll(async () => {
    const fed = await generateTrades(world.clickhouse, {
      rows: 300,
      spanHours: 0.5,
      end: new Date(world.now.getTime() - 30 * MIN),
      seed: 6,
    });
    recentRows = fed.rows.binance ?? 0;
    await runCycle(world.deps(), {});
    committed = await world.deps().watermarks.get(TABLE);
  });

  it('right after a cycle, the real watermark row is green', async () => {
    expect(committed.lastMarkerBatchId).not.toBeNull();
    const report = await healthOf(committed);

    expect(problems(report)).toEqual([]);
    expect(report.tables[0]?.iceberg).toMatchObject({ exists: true, behind: null });
    expect(healthRecords(report)[0]?.values.icebergBehind).toBe(0);
  });

  it('Iceberg past the watermark is amber while a cycle holds the lease, red once none does', async () => {
    const back = { ...committed, cursor: iso(Date.parse(committed.cursor) - 10 * MIN) };
    const lease = {
      holder: 'cycle-2',
      token: '9',
      expiresAt: iso(world.now.getTime() + 5 * MIN),
      host: null,
      pid: null,
      startedAt: null,
    };
    expect(problems(await healthOf({ ...back, lease }))).toEqual([tableProblem('warning', 'iceberg-ahead')]);
    const unrecorded = await healthOf(back);

    expect(problems(unrecorded)).toEqual([tableProblem('critical', 'iceberg-ahead')]);
    expect(unrecorded.healthy).toBe(false);
  });

  it("a watermark past a batch Iceberg's chain does not hold is red: the catalog moved back", async () => {
    const ahead = {
      ...committed,
      cursor: iso(Date.parse(committed.cursor) + 10 * MIN),
      lastMarkerBatchId: 'f'.repeat(32),
    };
    const report = await healthOf(ahead);
    expect(problems(report)).toEqual([tableProblem('critical', 'iceberg-behind')]);
    expect(report.problems[0]?.message).toContain(`last committed batch ${'f'.repeat(32)}`);
    expect(healthRecords(report)[0]?.values.icebergBehind).toBe(1);
  });
});

describe('health when a component does not answer', () => {
  it('ClickHouse down is red, and the pending rows are not counted rather than counted as none', async () => {
    const deps = world.deps();
    const clickhouse = Object.create(deps.clickhouse) as typeof deps.clickhouse;
    clickhouse.ping = async () => ({
      success: false,
      error: new Error('connect ECONNREFUSED 10.0.0.9:8123'),
    });
    const report = await collectHealth({ ...deps, clickhouse });
    expect(problems(report)).toEqual([{ severity: 'critical', code: 'clickhouse-down', table: null }]);
    expect(report.problems[0]?.message).toContain('ECONNREFUSED');
    expect(report.healthy).toBe(false);
    expect(report.tables[0]?.pendingRows).toBeNull();
  });

  it('a count of pending rows that fails is amber: the lag still comes from the watermark', async () => {
    const deps = world.deps();
    const clickhouse = Object.create(deps.clickhouse) as typeof deps.clickhouse;
    clickhouse.query = async () => {
      throw new Error('Memory limit (total) exceeded');
    };
    const report = await collectHealth({ ...deps, clickhouse });
    expect(problems(report)).toEqual([tableProblem('warning', 'clickhouse-query')]);
    expect(report.problems[0]?.message).toContain('pending rows not counted: Memory limit (total) exceeded');
    expect(report.healthy).toBe(true);
    expect(report.tables[0]).toMatchObject({ pendingRows: null, ttlHeadroomHours: null });
  });

  it('Postgres that hangs is red within the time limit, not a hung check', async () => {
    const deps = world.deps();
    const watermarks = Object.create(deps.watermarks) as typeof deps.watermarks;
    watermarks.list = () => new Promise(() => {});
    const report = await collectHealth({ ...deps, watermarks }, { timeoutMs: 300 });
    expect(problems(report)).toContainEqual({ severity: 'critical', code: 'postgres-down', table: null });
    expect(report.components.find((c) => c.name === 'postgres')?.detail).toContain('no answer within 0.3 s');
    expect(report.healthy).toBe(false);
    expect(report.tables[0]?.cursor).toBeNull();
  });
});

// Last: these rows, days old, would be the first offload of any cycle run after them.
describe('health of rows waiting in the hot tier', () => {
  it('rows waiting near the hot tier TTL are red; a never-moved watermark lags by its oldest row', async () => {
    const end = world.now.getTime() - 60 * HOUR;
    const fed = await generateTrades(world.clickhouse, {
      rows: 200,
      spanHours: 0.5,
      end: new Date(end),
      seed: 5,
      lateFraction: 0,
    });
    // The TTL is 7 days; with a 5-day headroom threshold, rows about 2.5 days old are within it.
    const thresholds = { health: { thresholds: { ttlHeadroomHours: 5 * 24 } } };
    const waiting = await healthOf({ cursor: iso(end - HOUR) }, thresholds);
    // Every row from the cursor on: these, and the last half hour's.
    expect(waiting.tables[0]?.pendingRows).toBe((fed.rows.binance ?? 0) + recentRows);
    expect(problems(waiting)).toContainEqual(tableProblem('critical', 'ttl'));
    const headroom = waiting.tables[0]?.ttlHeadroomHours as number;
    expect(headroom).toBeGreaterThan(7 * 24 - 61);
    expect(headroom).toBeLessThan(7 * 24 - 60 + 0.6);
    // Past those rows only the last hour's wait: the headroom is nearly the whole TTL.
    const past = await healthOf({ cursor: iso(end + MIN) }, thresholds);
    expect(past.tables[0]?.ttlHeadroomHours).toBeGreaterThan(7 * 24 - 1.1);
    expect(problems(past).map((p) => p.code)).not.toContain('ttl');

    // Never moved (version 0, at the initial cursor): the lag is to its oldest row, not to 1970.
    const never = await healthOf({ cursor: iso(0), version: 0, lastBatchId: null });
    const lag = never.tables[0]?.lagMinutes as number;
    expect(lag).toBeGreaterThan((bound - end) / MIN);
    expect(lag).toBeLessThanOrEqual((bound - end + 0.5 * HOUR) / MIN);
  });
});
