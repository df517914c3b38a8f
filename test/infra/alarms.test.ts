import { Match } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { ALARM_NAMES, METRICS, METRICS_NAMESPACE } from '../../src/metrics/names.ts';
import { logicalIdOf, onlyResource, resourcesOfType, type Synthesized, synthesize } from './support.ts';

let synth: Synthesized;
let page: string;
let warn: string;

beforeAll(() => {
  synth = synthesize({
    alarms: { lagCriticalMinutes: 45, lagWarningMinutes: 25 },
    notifications: {
      page: [{ protocol: 'https', endpoint: 'https://events.pagerduty.com/integration/abc123/enqueue' }],
      warn: [{ protocol: 'email', endpoint: 'data-platform@example.com' }],
    },
  });
  const topic = (name: string) =>
    logicalIdOf(synth.template, 'AWS::SNS::Topic', (r) => r.Properties.TopicName === name);
  page = topic('k2-offload-test-page');
  warn = topic('k2-offload-test-warn');
});

const alarm = (key: keyof typeof ALARM_NAMES) => `k2-offload-test-${ALARM_NAMES[key]}`;

describe('alarms', () => {
  it('watch the metrics the functions publish, with the seed thresholds (or the stage overrides)', () => {
    const cases: [keyof typeof ALARM_NAMES, string, string, number, string][] = [
      ['lagCritical', METRICS.lagMinutes.name, 'GreaterThanThreshold', 45, 'breaching'],
      ['lagElevated', METRICS.lagMinutes.name, 'GreaterThanThreshold', 25, 'notBreaching'],
      ['cycleTooSlow', METRICS.cycleDurationSeconds.name, 'GreaterThanThreshold', 600, 'notBreaching'],
      ['cycleSlow', METRICS.cycleDurationSeconds.name, 'GreaterThanThreshold', 300, 'notBreaching'],
      [
        'consecutiveFailures',
        METRICS.consecutiveFailures.name,
        'GreaterThanOrEqualToThreshold',
        3,
        'notBreaching',
      ],
      ['watermarkStale', METRICS.watermarkAgeSeconds.name, 'GreaterThanThreshold', 3600, 'notBreaching'],
      ['schedulerDown', METRICS.cyclesStarted.name, 'LessThanThreshold', 1, 'breaching'],
      ['ttlHeadroomLow', METRICS.ttlHeadroomHours.name, 'LessThanThreshold', 24, 'notBreaching'],
      ['throughputLow', METRICS.rowsPerSecond.name, 'LessThanThreshold', 10_000, 'notBreaching'],
      ['hourlyMismatch', METRICS.hourlyMismatchHours.name, 'GreaterThanThreshold', 0, 'notBreaching'],
    ];
    for (const [key, metric, comparison, threshold, missing] of cases)
      synth.template.hasResourceProperties('AWS::CloudWatch::Alarm', {
        AlarmName: alarm(key),
        Namespace: METRICS_NAMESPACE,
        MetricName: metric,
        ComparisonOperator: comparison,
        Threshold: threshold,
        TreatMissingData: missing,
        Dimensions: Match.absent(),
      });
  });

  it('fire when no cycle started for 30 minutes, including when nothing is reported at all', () => {
    synth.template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      AlarmName: alarm('schedulerDown'),
      Statistic: 'Sum',
      Period: 1800,
      EvaluationPeriods: 1,
      TreatMissingData: 'breaching',
    });
  });

  it('judge the cycle success rate from the cycles metric by status', () => {
    synth.template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      AlarmName: alarm('successRateLow'),
      Threshold: 95,
      ComparisonOperator: 'LessThanThreshold',
      Metrics: Match.arrayWith([
        Match.objectLike({
          Expression: Match.stringLikeRegexp('100 \\* FILL\\(ok, 0\\) / FILL\\(total, 0\\)'),
        }),
        Match.objectLike({
          Id: 'ok',
          MetricStat: Match.objectLike({
            Metric: Match.objectLike({
              MetricName: METRICS.cycles.name,
              Dimensions: [{ Name: 'Status', Value: 'succeeded' }],
            }),
          }),
        }),
      ]),
    });
  });

  it('count failed, timed out and aborted executions of the state machine', () => {
    const machine = logicalIdOf(synth.template, 'AWS::StepFunctions::StateMachine', () => true);
    synth.template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      AlarmName: alarm('executionsFailing'),
      Metrics: Match.arrayWith(
        ['ExecutionsFailed', 'ExecutionsTimedOut', 'ExecutionsAborted'].map((name) =>
          Match.objectLike({
            MetricStat: Match.objectLike({
              Metric: Match.objectLike({
                Namespace: 'AWS/States',
                MetricName: name,
                Dimensions: [{ Name: 'StateMachineArn', Value: { Ref: machine } }],
              }),
            }),
          }),
        ),
      ),
    });
  });

  it('point on-call at the runbook of each alarm', () => {
    for (const [, a] of resourcesOfType(synth.template, 'AWS::CloudWatch::Alarm'))
      expect(a.Properties.AlarmDescription).toMatch(/Runbook: docs\/runbooks\/[a-z-]+\.md$/);
  });
});

describe('notifications', () => {
  it('page once per incident: only the composite alarm notifies the page topic, on alarm and on recovery', () => {
    const critical = [
      'lagCritical',
      'cycleTooSlow',
      'consecutiveFailures',
      'watermarkStale',
      'schedulerDown',
      'ttlHeadroomLow',
      'executionsFailing',
      'hourlyMismatch',
    ] as const;
    const incident = onlyResource(synth.template, 'AWS::CloudWatch::CompositeAlarm');
    expect(incident.Properties).toMatchObject({
      AlarmName: alarm('incident'),
      AlarmActions: [{ Ref: page }],
      OKActions: [{ Ref: page }],
    });
    const rule = JSON.stringify(incident.Properties.AlarmRule);
    for (const key of critical) {
      const id = logicalIdOf(
        synth.template,
        'AWS::CloudWatch::Alarm',
        (r) => r.Properties.AlarmName === alarm(key),
      );
      expect(rule, key).toContain(id);
    }
    for (const [, a] of resourcesOfType(synth.template, 'AWS::CloudWatch::Alarm'))
      expect(JSON.stringify(a.Properties.AlarmActions ?? [])).not.toContain(page);
  });

  it('send warnings to the warn topic', () => {
    for (const key of ['lagElevated', 'cycleSlow', 'successRateLow', 'throughputLow'] as const)
      synth.template.hasResourceProperties('AWS::CloudWatch::Alarm', {
        AlarmName: alarm(key),
        AlarmActions: [{ Ref: warn }],
      });
  });

  it('subscribe the configured endpoints and refuse publishers without TLS', () => {
    synth.template.hasResourceProperties('AWS::SNS::Subscription', {
      TopicArn: { Ref: page },
      Protocol: 'https',
      Endpoint: 'https://events.pagerduty.com/integration/abc123/enqueue',
    });
    synth.template.hasResourceProperties('AWS::SNS::Subscription', {
      TopicArn: { Ref: warn },
      Protocol: 'email',
      Endpoint: 'data-platform@example.com',
    });
    for (const topic of [page, warn])
      synth.template.hasResourceProperties('AWS::SNS::TopicPolicy', {
        Topics: [{ Ref: topic }],
        PolicyDocument: {
          Statement: Match.arrayWith([
            Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
          ]),
        },
      });
  });
});

describe('dashboard', () => {
  it('shows lag, TTL headroom and rows/s per configured table, cycle duration, errors and success rate', () => {
    const dashboard = onlyResource(synth.template, 'AWS::CloudWatch::Dashboard');
    const body = JSON.stringify(dashboard.Properties.DashboardBody);
    for (const title of [
      'Lag per table',
      'Cycle duration',
      'Rows per second per table',
      'Errors by type',
      'Cycle success rate',
      'TTL headroom per table',
    ])
      expect(body, title).toContain(title);
    for (const table of ['bronze_trades_binance', 'silver_trades', 'ohlcv_1d'])
      expect(
        body.match(new RegExp(`\\\\"Table\\\\",\\\\"${table}\\\\"`, 'g'))?.length,
        table,
      ).toBeGreaterThanOrEqual(5);
  });
});
