import { Duration } from 'aws-cdk-lib';
import * as cw from 'aws-cdk-lib/aws-cloudwatch';
import { Construct } from 'constructs';
import { METRICS, METRICS_NAMESPACE, type MetricKey } from '../../src/metrics/names.ts';
import type { StageConfig } from '../stage-config.ts';
import { type OffloadAlarms, offloadMetric, SUCCESS_RATE_WINDOW, successRate } from './alarms.ts';

export type OffloadDashboardProps = {
  resourcePrefix: string;
  tables: string[];
  thresholds: StageConfig['alarms'];
  alarms: OffloadAlarms;
};

/** The panels of the old dashboard, on the metrics the alarms watch: one line per table where it matters. */
export class OffloadDashboard extends Construct {
  readonly dashboard: cw.Dashboard;

  constructor(scope: Construct, id: string, props: OffloadDashboardProps) {
    super(scope, id);
    const five = Duration.minutes(5);
    const perTable = (key: MetricKey) =>
      props.tables.map((table) => offloadMetric(key, five, { Table: table }).with({ label: table }));
    const line = (title: string, left: cw.IMetric[], annotations: cw.HorizontalAnnotation[] = []) =>
      new cw.GraphWidget({ title, left, leftAnnotations: annotations, width: 12, height: 6 });
    const t = props.thresholds;

    this.dashboard = new cw.Dashboard(this, 'Dashboard', {
      dashboardName: `${props.resourcePrefix}`,
      defaultInterval: Duration.hours(6),
    });
    this.dashboard.addWidgets(
      new cw.AlarmStatusWidget({
        title: 'Alarms',
        alarms: [...Object.values(props.alarms.alarms), props.alarms.incident],
        width: 24,
        height: 3,
      }),
    );
    this.dashboard.addWidgets(
      line('Lag per table (minutes)', perTable('lagMinutes'), [
        { value: t.lagWarningMinutes, label: 'warning', color: cw.Color.ORANGE },
        { value: t.lagCriticalMinutes, label: 'critical', color: cw.Color.RED },
      ]),
      line(
        'Cycle duration (s)',
        [offloadMetric('cycleDurationSeconds', Duration.minutes(15)).with({ label: 'cycle' })],
        [
          { value: t.cycleWarningSeconds, label: 'warning', color: cw.Color.ORANGE },
          { value: t.cycleCriticalSeconds, label: 'critical', color: cw.Color.RED },
        ],
      ),
    );
    this.dashboard.addWidgets(
      line('Rows per second per table', perTable('rowsPerSecond')),
      line('Rows offloaded per table', perTable('rows')),
    );
    this.dashboard.addWidgets(
      line('Errors by type', [
        new cw.MathExpression({
          expression: `SEARCH('{${METRICS_NAMESPACE},${'ErrorType'}} MetricName="${METRICS.errors.name}"', 'Sum', 300)`,
          label: '',
          period: five,
        }),
      ]),
      line(
        `Cycle success rate (%, ${SUCCESS_RATE_WINDOW.toHours()} h window)`,
        [successRate(SUCCESS_RATE_WINDOW)],
        [{ value: t.successRatePercent, label: 'target', color: cw.Color.RED }],
      ),
    );
    this.dashboard.addWidgets(
      line('TTL headroom per table (hours)', perTable('ttlHeadroomHours'), [
        { value: t.ttlHeadroomHours, label: 'low', color: cw.Color.RED },
      ]),
      line('Watermark age per table (s)', perTable('watermarkAgeSeconds'), [
        { value: t.watermarkStaleSeconds, label: 'stale', color: cw.Color.RED },
      ]),
    );
    this.dashboard.addWidgets(
      line('Consecutive failures per table', perTable('consecutiveFailures'), [
        { value: t.consecutiveFailures, label: 'alarm', color: cw.Color.RED },
      ]),
      line('Cycles by status', [
        offloadMetric('cycles', Duration.minutes(15), { Status: 'succeeded' }).with({ label: 'succeeded' }),
        offloadMetric('cycles', Duration.minutes(15), { Status: 'partial' }).with({ label: 'partial' }),
        offloadMetric('cycles', Duration.minutes(15), { Status: 'failed' }).with({ label: 'failed' }),
        offloadMetric('cyclesStarted', Duration.minutes(15)).with({ label: 'started' }),
      ]),
    );
  }
}
