import { Duration } from 'aws-cdk-lib';
import * as cw from 'aws-cdk-lib/aws-cloudwatch';
import * as actions from 'aws-cdk-lib/aws-cloudwatch-actions';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import {
  ALARM_NAMES,
  type AlarmKey,
  METRICS,
  METRICS_NAMESPACE,
  type MetricKey,
} from '../../src/metrics/names.ts';
import type { StageConfig } from '../stage-config.ts';
import type { Notifications } from './notifications.ts';

/** Runbook of each alarm, under docs/runbooks/. */
export const RUNBOOKS: Record<AlarmKey, string> = {
  lagCritical: 'lag-critical.md',
  lagElevated: 'lag-elevated.md',
  cycleTooSlow: 'cycle-too-slow.md',
  cycleSlow: 'cycle-slow.md',
  consecutiveFailures: 'consecutive-failures.md',
  watermarkStale: 'watermark-stale.md',
  schedulerDown: 'scheduler-down.md',
  ttlHeadroomLow: 'ttl-headroom-low.md',
  successRateLow: 'success-rate-low.md',
  throughputLow: 'throughput-low.md',
  executionsFailing: 'executions-failing.md',
  icebergBehind: 'iceberg-behind.md',
  hourlyMismatch: 'hourly-mismatch.md',
  incident: 'README.md',
};

/** Success rate is judged over this window: with a 15-minute schedule, one failed cycle in 24 is 95.8%. */
export const SUCCESS_RATE_WINDOW = Duration.hours(6);

export type OffloadAlarmsProps = {
  resourcePrefix: string;
  thresholds: StageConfig['alarms'];
  /** The schedule period: the cycle metrics arrive once per period. */
  cyclePeriod: Duration;
  stateMachine: sfn.IStateMachine;
  notifications: Notifications;
};

export function offloadMetric(
  key: MetricKey,
  period: Duration,
  dimensionsMap?: Record<string, string>,
): cw.Metric {
  const m = METRICS[key];
  return new cw.Metric({
    namespace: METRICS_NAMESPACE,
    metricName: m.name,
    statistic: m.statistic,
    period,
    ...(dimensionsMap ? { dimensionsMap } : {}),
  });
}

/** `100 * succeeded / all` cycles over the window; 100 when no cycle finished (the scheduler alarm covers that). */
export function successRate(period: Duration): cw.MathExpression {
  return new cw.MathExpression({
    label: 'Cycle success rate (%)',
    expression: 'IF(FILL(total, 0) > 0, 100 * FILL(ok, 0) / FILL(total, 0), 100)',
    usingMetrics: {
      ok: offloadMetric('cycles', period, { Status: 'succeeded' }),
      total: offloadMetric('cycles', period),
    },
    period,
  });
}

/**
 * The alarms of DESIGN.md section 6, with the old system's names and thresholds. Critical alarms carry
 * no action of their own: the composite `IcebergOffloadIncident` pages once while any of them is in
 * alarm. Warnings go to the warn topic.
 */
export class OffloadAlarms extends Construct {
  readonly alarms: Record<Exclude<AlarmKey, 'incident'>, cw.Alarm>;
  readonly incident: cw.CompositeAlarm;

  constructor(scope: Construct, id: string, props: OffloadAlarmsProps) {
    super(scope, id);
    const t = props.thresholds;
    const five = Duration.minutes(5);
    const GT = cw.ComparisonOperator.GREATER_THAN_THRESHOLD;
    const GTE = cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD;
    const LT = cw.ComparisonOperator.LESS_THAN_THRESHOLD;
    const make = (
      key: Exclude<AlarmKey, 'incident'>,
      metric: cw.IMetric,
      spec: {
        threshold: number;
        comparison: cw.ComparisonOperator;
        periods: number;
        missing: cw.TreatMissingData;
        summary: string;
      },
    ) =>
      new cw.Alarm(this, key, {
        alarmName: `${props.resourcePrefix}-${ALARM_NAMES[key]}`,
        alarmDescription: `${spec.summary} Runbook: docs/runbooks/${RUNBOOKS[key]}`,
        metric,
        threshold: spec.threshold,
        comparisonOperator: spec.comparison,
        evaluationPeriods: spec.periods,
        datapointsToAlarm: spec.periods,
        treatMissingData: spec.missing,
      });
    const { BREACHING, NOT_BREACHING } = cw.TreatMissingData;

    this.alarms = {
      // The health function writes lag every 5 minutes; silence means nobody is watching, which pages too.
      lagCritical: make('lagCritical', offloadMetric('lagMinutes', five), {
        threshold: t.lagCriticalMinutes,
        comparison: GT,
        periods: 2,
        missing: BREACHING,
        summary: `A table's cold tier is more than ${t.lagCriticalMinutes} minutes behind (or lag is not being reported).`,
      }),
      lagElevated: make('lagElevated', offloadMetric('lagMinutes', five), {
        threshold: t.lagWarningMinutes,
        comparison: GT,
        periods: 2,
        missing: NOT_BREACHING,
        summary: `A table's cold tier is more than ${t.lagWarningMinutes} minutes behind.`,
      }),
      cycleTooSlow: make('cycleTooSlow', offloadMetric('cycleDurationSeconds', props.cyclePeriod), {
        threshold: t.cycleCriticalSeconds,
        comparison: GT,
        periods: 1,
        missing: NOT_BREACHING,
        summary: `An offload cycle took more than ${t.cycleCriticalSeconds} s.`,
      }),
      cycleSlow: make('cycleSlow', offloadMetric('cycleDurationSeconds', props.cyclePeriod), {
        threshold: t.cycleWarningSeconds,
        comparison: GT,
        periods: 1,
        missing: NOT_BREACHING,
        summary: `An offload cycle took more than ${t.cycleWarningSeconds} s.`,
      }),
      consecutiveFailures: make('consecutiveFailures', offloadMetric('consecutiveFailures', five), {
        threshold: t.consecutiveFailures,
        comparison: GTE,
        periods: 1,
        missing: NOT_BREACHING,
        summary: `A table failed ${t.consecutiveFailures} or more passes in a row.`,
      }),
      watermarkStale: make('watermarkStale', offloadMetric('watermarkAgeSeconds', five), {
        threshold: t.watermarkStaleSeconds,
        comparison: GT,
        periods: 2,
        missing: NOT_BREACHING,
        summary: `A table has not completed a pass for more than ${t.watermarkStaleSeconds} s.`,
      }),
      // No data at all is exactly the failure this alarm exists for (the old one watched a removed host).
      schedulerDown: make(
        'schedulerDown',
        offloadMetric('cyclesStarted', Duration.minutes(t.schedulerSilenceMinutes)),
        {
          threshold: 1,
          comparison: LT,
          periods: 1,
          missing: BREACHING,
          summary: `No offload cycle started in ${t.schedulerSilenceMinutes} minutes.`,
        },
      ),
      ttlHeadroomLow: make('ttlHeadroomLow', offloadMetric('ttlHeadroomHours', five), {
        threshold: t.ttlHeadroomHours,
        comparison: LT,
        periods: 2,
        missing: NOT_BREACHING,
        summary: `Rows not yet in Iceberg will be deleted by the hot tier TTL in less than ${t.ttlHeadroomHours} hours.`,
      }),
      successRateLow: make('successRateLow', successRate(SUCCESS_RATE_WINDOW), {
        threshold: t.successRatePercent,
        comparison: LT,
        periods: 1,
        missing: NOT_BREACHING,
        summary: `Fewer than ${t.successRatePercent}% of cycles in ${SUCCESS_RATE_WINDOW.toHours()} h succeeded for every table.`,
      }),
      throughputLow: make('throughputLow', offloadMetric('rowsPerSecond', Duration.hours(1)), {
        threshold: t.throughputRowsPerSecond,
        comparison: LT,
        periods: 1,
        missing: NOT_BREACHING,
        summary: `Offload throughput averaged below ${t.throughputRowsPerSecond} rows/s over an hour.`,
      }),
      icebergBehind: make('icebergBehind', offloadMetric('icebergBehind', five), {
        threshold: 1,
        comparison: GTE,
        periods: 1,
        missing: NOT_BREACHING,
        summary:
          'Iceberg lacks batches a watermark has passed (catalog restored or switched); the table is stopped.',
      }),
      executionsFailing: make(
        'executionsFailing',
        new cw.MathExpression({
          label: 'Failed, timed out or aborted executions',
          expression: 'FILL(failed, 0) + FILL(timedOut, 0) + FILL(aborted, 0)',
          usingMetrics: {
            failed: props.stateMachine.metricFailed({ period: props.cyclePeriod }),
            timedOut: props.stateMachine.metricTimedOut({ period: props.cyclePeriod }),
            aborted: props.stateMachine.metricAborted({ period: props.cyclePeriod }),
          },
          period: props.cyclePeriod,
        }),
        {
          threshold: 1,
          comparison: GTE,
          periods: 2,
          missing: NOT_BREACHING,
          summary:
            'Two cycles in a row ended without publishing (planner or publish step failed, or timeout).',
        },
      ),
      // Each cycle's per-hour check: rows (or candle values) in ClickHouse that Iceberg was never given.
      hourlyMismatch: make('hourlyMismatch', offloadMetric('hourlyMismatchHours', props.cyclePeriod), {
        threshold: 0,
        comparison: GT,
        periods: 1,
        missing: NOT_BREACHING,
        summary:
          'A closed hour holds rows or candle values in ClickHouse that the cold tier was not given (back-dated rows, late trades); run k2-offload repair.',
      }),
    };

    const warn = new actions.SnsAction(props.notifications.warn);
    const critical = [
      this.alarms.lagCritical,
      this.alarms.cycleTooSlow,
      this.alarms.consecutiveFailures,
      this.alarms.watermarkStale,
      this.alarms.schedulerDown,
      this.alarms.ttlHeadroomLow,
      this.alarms.executionsFailing,
      this.alarms.icebergBehind,
      this.alarms.hourlyMismatch,
    ];
    for (const alarm of [
      this.alarms.lagElevated,
      this.alarms.cycleSlow,
      this.alarms.successRateLow,
      this.alarms.throughputLow,
    ])
      alarm.addAlarmAction(warn);

    this.incident = new cw.CompositeAlarm(this, 'Incident', {
      compositeAlarmName: `${props.resourcePrefix}-${ALARM_NAMES.incident}`,
      alarmDescription: `k2 offload incident: one or more critical alarms. Runbook: docs/runbooks/${RUNBOOKS.incident}`,
      alarmRule: cw.AlarmRule.anyOf(...critical.map((a) => cw.AlarmRule.fromAlarm(a, cw.AlarmState.ALARM))),
    });
    const page = new actions.SnsAction(props.notifications.page);
    this.incident.addAlarmAction(page);
    this.incident.addOkAction(page);
  }
}
