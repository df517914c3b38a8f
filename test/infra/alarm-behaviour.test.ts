import { beforeAll, describe, expect, it } from 'vitest';
import { createHandler as healthHandler } from '../../functions/health/handler.ts';
import { UnavailableError } from '../../src/errors.ts';
import { checkRecords } from '../../src/hourly/check.ts';
import type { EmfRecord } from '../../src/metrics/emf.ts';
import { renderEmfLines } from '../../src/metrics/emf.ts';
import { ALARM_NAMES, type AlarmKey } from '../../src/metrics/names.ts';
import type { PipelineDeps } from '../../src/pipeline/deps.ts';
import { type HealthReport, healthRecords, type TableHealth } from '../../src/pipeline/health.ts';
import { publishCycle } from '../../src/pipeline/publish-cycle.ts';
import {
  type AlarmProps,
  alarmState,
  compositeState,
  type Datapoint,
  datapointsFromEmf,
} from './alarm-eval.ts';
import { resourcesOfType, synthesize } from './support.ts';

const NOW = Date.UTC(2026, 0, 1, 12, 0, 0);
const MIN = 60_000;

type Synth = { alarms: Map<string, AlarmProps & { id: string }>; rule: string; machine: string };

function alarmsOf(stage: Parameters<typeof synthesize>[0]): Synth {
  const { template } = synthesize(stage);
  const alarms = new Map<string, AlarmProps & { id: string }>();
  for (const [id, a] of resourcesOfType(template, 'AWS::CloudWatch::Alarm'))
    alarms.set(String(a.Properties.AlarmName), { ...(a.Properties as unknown as AlarmProps), id });
  const [[, composite]] = resourcesOfType(template, 'AWS::CloudWatch::CompositeAlarm') as [[string, never]];
  const printed = (v: unknown): string => {
    if (typeof v === 'string') return v;
    const x = v as { 'Fn::Join'?: [string, unknown[]]; 'Fn::GetAtt'?: [string, string] };
    if (x['Fn::Join']) return x['Fn::Join'][1].map(printed).join(x['Fn::Join'][0]);
    if (x['Fn::GetAtt']) return x['Fn::GetAtt'][0];
    throw new Error(`unexpected ${JSON.stringify(v)}`);
  };
  const [[machine]] = resourcesOfType(template, 'AWS::StepFunctions::StateMachine') as [[string, never]];
  return {
    alarms,
    rule: printed((composite as { Properties: { AlarmRule: unknown } }).Properties.AlarmRule),
    machine,
  };
}

let prod: Synth;
let dev: Synth;
beforeAll(() => {
  prod = alarmsOf({ production: true });
  dev = alarmsOf({});
}, 120_000);

const named = (s: Synth, key: AlarmKey) => {
  const a = s.alarms.get(`k2-offload-test-${ALARM_NAMES[key]}`);
  if (!a) throw new Error(`no alarm ${key}`);
  return a;
};
const state = (key: AlarmKey, points: Datapoint[], s: Synth = prod) => alarmState(named(s, key), points, NOW);
const incident = (points: Datapoint[], s: Synth = prod) =>
  compositeState(
    s.rule,
    Object.fromEntries([...s.alarms.values()].map((a) => [a.id, alarmState(a, points, NOW)])),
  );

/** What the health function prints for a report, as CloudWatch extracts it. */
function health(at: number, tables: Partial<TableHealth>[]): Datapoint[] {
  const report = {
    checkedAt: new Date(at).toISOString(),
    healthy: true,
    components: [],
    problems: [],
    tables: tables.map((t, i) => ({
      table: `bronze_trades_${i}`,
      lagMinutes: 5,
      watermarkAgeSeconds: 300,
      ttlHeadroomHours: 100,
      consecutiveFailures: 0,
      iceberg: {
        table: `cold.bronze_trades_${i}`,
        exists: true,
        newestWindowEnd: null,
        newestBatchId: null,
        behind: null,
      },
      ...t,
    })),
  } as unknown as HealthReport;
  return datapointsFromEmf(renderEmfLines(healthRecords(report)));
}
const everyFive = (f: (at: number) => Datapoint[]) => [1, 6, 11].flatMap((m) => f(NOW - m * MIN));

function sinkDeps(at: number) {
  const records: EmfRecord[] = [];
  const deps = {
    clock: () => new Date(at),
    metrics: (r: EmfRecord[]) => records.push(...r),
    log: () => {},
  } as unknown as PipelineDeps;
  return { deps, points: () => datapointsFromEmf(renderEmfLines(records)) };
}

/** What PublishCycle prints for one final pass. */
async function cycle(
  at: number,
  opts: { seconds?: number; failed?: boolean; layers?: [string, number, number][] } = {},
): Promise<Datapoint[]> {
  const { deps, points } = sinkDeps(at);
  const layers = (opts.layers ?? [['bronze', 1000, 1000]]).map(([layer, rows, stageMs], i) => [
    {
      table: `${layer}_${i}`,
      layer,
      status: opts.failed ? ('failed' as const) : ('succeeded' as const),
      batches: [{ batchId: `b${i}`, windowEnd: new Date(at).toISOString(), rows, stageMs }],
      ...(opts.failed ? { error: { Error: 'UnavailableError' } } : {}),
    },
  ]);
  await publishCycle(deps, {
    cycleId: `c${at}`,
    cycleStartedAt: new Date(at - (opts.seconds ?? 60) * 1000).toISOString(),
    pass: 1,
    final: true,
    more: false,
    skipped: [],
    layers,
  });
  return points();
}

/** What Step Functions publishes for the state machine (AWS/States), once per execution event. */
const states = (name: string, at: number, machine = prod.machine): Datapoint => ({
  namespace: 'AWS/States',
  name,
  dimensions: { StateMachineArn: machine },
  value: 1,
  timestamp: at,
});
const started = (s: Synth = prod) =>
  [2, 17].map((m) => states('ExecutionsStarted', NOW - m * MIN, s.machine));

describe('alarms, evaluated from the template on the metrics our functions emit', () => {
  it('lag: critical above the threshold for 10 minutes or when lag is not reported; elevated only above its own', () => {
    expect(
      state(
        'lagCritical',
        everyFive((at) => health(at, [{ lagMinutes: 45 }])),
      ),
    ).toBe('ALARM');
    expect(
      state(
        'lagCritical',
        everyFive((at) => health(at, [{ lagMinutes: 25 }])),
      ),
    ).toBe('OK');
    expect(state('lagCritical', [])).toBe('ALARM');
    expect(
      state(
        'lagElevated',
        everyFive((at) => health(at, [{ lagMinutes: 25 }])),
      ),
    ).toBe('ALARM');
    expect(
      state(
        'lagElevated',
        everyFive((at) => health(at, [{ lagMinutes: 15 }])),
      ),
    ).toBe('OK');
    expect(state('lagElevated', [])).toBe('OK');
  });

  it('watermark age, TTL headroom and consecutive failures cross their thresholds from the health check', () => {
    expect(
      state(
        'watermarkStale',
        everyFive((at) => health(at, [{ watermarkAgeSeconds: 4000 }])),
      ),
    ).toBe('ALARM');
    expect(
      state(
        'watermarkStale',
        everyFive((at) => health(at, [{ watermarkAgeSeconds: 900 }])),
      ),
    ).toBe('OK');
    expect(
      state(
        'ttlHeadroomLow',
        everyFive((at) => health(at, [{}, { ttlHeadroomHours: 10 }])),
      ),
    ).toBe('ALARM');
    expect(
      state(
        'ttlHeadroomLow',
        everyFive((at) => health(at, [{ ttlHeadroomHours: 48 }])),
      ),
    ).toBe('OK');
    expect(state('consecutiveFailures', health(NOW - MIN, [{}, { consecutiveFailures: 3 }]))).toBe('ALARM');
    expect(state('consecutiveFailures', health(NOW - MIN, [{ consecutiveFailures: 2 }]))).toBe('OK');
  });

  it('Iceberg behind a watermark: critical at once from the health check, not while Iceberg holds it', () => {
    const behind = (reason: string | null) => ({
      iceberg: { table: 'cold.t', exists: true, newestWindowEnd: null, newestBatchId: null, behind: reason },
    });
    expect(
      state('icebergBehind', health(NOW - MIN, [{}, behind('batch b9 is not in the marker chain')])),
    ).toBe('ALARM');
    expect(state('icebergBehind', health(NOW - MIN, [behind(null)]))).toBe('OK');
    expect(state('icebergBehind', [])).toBe('OK');
  });

  it('hourly mismatch: any closed hour that differs, from the per-hour check of a cycle', () => {
    const check = (mismatches: number) =>
      datapointsFromEmf(
        renderEmfLines(
          checkRecords(
            [
              {
                table: 'bronze_trades_binance',
                checkedAt: new Date(NOW - MIN).toISOString(),
                from: new Date(NOW - 48 * 60 * MIN).toISOString(),
                to: new Date(NOW - 60 * MIN).toISOString(),
                checkedHours: 47,
                mismatches: Array.from({ length: mismatches }, (_, i) => ({
                  hour: new Date(NOW - (i + 2) * 60 * MIN).toISOString(),
                  clickhouseRows: 10,
                  committedRows: 9,
                })) as never,
              },
            ],
            NOW - MIN,
          ),
        ),
      );
    expect(state('hourlyMismatch', check(1))).toBe('ALARM');
    expect(state('hourlyMismatch', check(0))).toBe('OK');
    expect(state('hourlyMismatch', [])).toBe('OK');
  });

  it('cycle duration: slow above 300 s, too slow above 600 s, from the publish step', async () => {
    expect(state('cycleTooSlow', await cycle(NOW - MIN, { seconds: 700 }))).toBe('ALARM');
    expect(state('cycleSlow', await cycle(NOW - MIN, { seconds: 400 }))).toBe('ALARM');
    expect(state('cycleTooSlow', await cycle(NOW - MIN, { seconds: 400 }))).toBe('OK');
    expect(state('cycleSlow', await cycle(NOW - MIN, { seconds: 200 }))).toBe('OK');
  });

  it('success rate: below 95% of the cycles of 6 hours, not on a quiet window', async () => {
    const day = async (failed: number) => {
      const points: Datapoint[] = [];
      for (let i = 0; i < 24; i++)
        points.push(...(await cycle(NOW - (i * 15 + 1) * MIN, { failed: i < failed })));
      return points;
    };
    expect(state('successRateLow', await day(2))).toBe('ALARM');
    expect(state('successRateLow', await day(1))).toBe('OK');
    expect(state('successRateLow', [])).toBe('OK');
  });

  it('throughput: bronze rows over bronze staging seconds in an hour; small tables and quiet hours do not fire it', async () => {
    const hour = async (layers: [string, number, number][]) => {
      const points: Datapoint[] = [];
      for (let i = 0; i < 4; i++) points.push(...(await cycle(NOW - (i * 15 + 1) * MIN, { layers })));
      return points;
    };
    // 4 cycles x 30 s of bronze staging at 3,000 rows/s: below 10,000.
    expect(state('throughputLow', await hour([['bronze', 90_000, 30_000]]))).toBe('ALARM');
    // Fast bronze, with slow small candle tables beside it (which the old per-table average let fire).
    expect(
      state(
        'throughputLow',
        await hour([
          ['bronze', 600_000, 30_000],
          ['gold', 20, 5_000],
          ['gold', 5, 5_000],
        ]),
      ),
    ).toBe('OK');
    // A quiet hour: 4 s of bronze staging in total is too little to judge.
    expect(state('throughputLow', await hour([['bronze', 400, 1_000]]))).toBe('OK');
  });

  it('scheduler down: no execution started in 30 minutes, fed by Step Functions, not by a planner that succeeded', () => {
    expect(state('schedulerDown', started())).toBe('OK');
    // Executions start but the planner fails every time: the scheduler is up (executionsFailing pages).
    const failing = [...started(), ...[2, 17].map((m) => states('ExecutionsFailed', NOW - m * MIN))];
    expect(state('schedulerDown', failing)).toBe('OK');
    expect(state('schedulerDown', [])).toBe('ALARM');
    // A stage whose schedule is switched off expects no executions.
    expect(state('schedulerDown', [], dev)).toBe('OK');
  });

  it('executions failing: failed, timed out or aborted executions in two periods in a row', () => {
    const failed = [2, 17].map((m) => states('ExecutionsFailed', NOW - m * MIN));
    expect(state('executionsFailing', failed)).toBe('ALARM');
    expect(
      state('executionsFailing', [
        states('ExecutionsTimedOut', NOW - 2 * MIN),
        states('ExecutionsAborted', NOW - 17 * MIN),
      ]),
    ).toBe('ALARM');
    expect(state('executionsFailing', failed.slice(0, 1))).toBe('OK');
  });
});

describe('a stage that is not configured yet pages nobody; a configured one with broken connections does', () => {
  const notConfiguredHealth = async (at: number) => {
    const { deps, points } = sinkDeps(at);
    const handler = healthHandler(async () => ({
      ...deps,
      notConfigured: 'not configured: put {"url": ...} in secret k2-offload-test/postgres (arn)',
    }));
    const report = await handler({ source: 'schedule' });
    expect(report.problems[0]?.message).toMatch(
      /^not configured: put \{"url": \.\.\.\} in secret k2-offload-test\/postgres/,
    );
    return points();
  };

  it('not configured: lag is not reported and cycles plan nothing, yet the incident alarm stays OK', async () => {
    const points: Datapoint[] = [];
    for (const m of [1, 6, 11]) points.push(...(await notConfiguredHealth(NOW - m * MIN)));
    points.push(...started());
    expect(state('notConfigured', points)).toBe('ALARM');
    expect(state('lagCritical', points)).toBe('ALARM');
    expect(incident(points)).toBe('OK');
  });

  it('configured, Postgres unreachable: the health function fails, nothing is reported, and the incident pages', async () => {
    const handler = healthHandler(async () => {
      throw new UnavailableError('Postgres did not answer');
    });
    await expect(handler({ source: 'schedule' })).rejects.toThrow(UnavailableError);
    const points = [...started()];
    expect(state('notConfigured', points)).toBe('OK');
    expect(incident(points)).toBe('ALARM');
  });

  it('configured and healthy: no incident', () => {
    const points = [...everyFive((at) => health(at, [{}])), ...started()];
    expect(incident(points)).toBe('OK');
  });

  it('covers every alarm of the stack', () => {
    const covered: AlarmKey[] = [
      'lagCritical',
      'lagElevated',
      'watermarkStale',
      'ttlHeadroomLow',
      'consecutiveFailures',
      'cycleTooSlow',
      'cycleSlow',
      'successRateLow',
      'throughputLow',
      'schedulerDown',
      'executionsFailing',
      'notConfigured',
      'icebergBehind',
      'hourlyMismatch',
    ];
    expect([...prod.alarms.keys()].sort()).toEqual(
      covered.map((k) => `k2-offload-test-${ALARM_NAMES[k]}`).sort(),
    );
  });
});
