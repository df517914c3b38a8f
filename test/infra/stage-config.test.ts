import { describe, expect, it } from 'vitest';
import {
  executionTimeoutMinutes,
  loadStageConfig,
  parseStageConfig,
  scheduleEnabled,
  schedulePeriodMinutes,
} from '../../lib/stage-config.ts';
import { ConfigError } from '../../src/errors.ts';

describe('stage config', () => {
  it('defaults to a 15-minute cycle that times out a minute before the next one', () => {
    const config = parseStageConfig({});
    expect(config).toMatchObject({
      stage: 'dev',
      schedule: 'rate(15 minutes)',
      glueDatabase: 'cold',
      maxConcurrency: 4,
      alarms: {
        lagCriticalMinutes: 30,
        lagWarningMinutes: 20,
        cycleCriticalSeconds: 600,
        consecutiveFailures: 3,
      },
      notifications: { page: [], warn: [] },
    });
    expect(executionTimeoutMinutes(config)).toBe(14);
  });

  it('switches the schedule on only in production unless the stage says otherwise', () => {
    expect(scheduleEnabled(parseStageConfig({}))).toBe(false);
    expect(scheduleEnabled(parseStageConfig({ production: true }))).toBe(true);
    expect(scheduleEnabled(parseStageConfig({ scheduleEnabled: true }))).toBe(true);
    expect(scheduleEnabled(parseStageConfig({ production: true, scheduleEnabled: false }))).toBe(false);
  });

  it("needs the subnets' route tables for the S3 gateway endpoint, unless the subnets use a NAT gateway", () => {
    const vpc = { vpcId: 'vpc-0a1b', subnetIds: ['subnet-0a'], availabilityZones: ['eu-west-1a'] };
    expect(() => parseStageConfig({ vpc })).toThrow(
      /vpc\.routeTableIds must name the route table of each of the 1 subnets \(got 0\).*or set vpc\.egress to "nat"/,
    );
    expect(parseStageConfig({ vpc: { ...vpc, egress: 'nat' } }).vpc?.egress).toBe('nat');
    expect(parseStageConfig({ vpc: { ...vpc, routeTableIds: ['rtb-0a'] } }).vpc?.egress).toBe('endpoints');
  });

  it('derives the schedule period from rate expressions', () => {
    expect(schedulePeriodMinutes('rate(1 hour)')).toBe(60);
    expect(schedulePeriodMinutes('rate(30 minutes)')).toBe(30);
    expect(schedulePeriodMinutes('cron(0/15 * * * ? *)')).toBeUndefined();
    expect(executionTimeoutMinutes(parseStageConfig({ schedule: 'rate(1 hour)' }))).toBe(59);
  });

  it('refuses a timeout that lets cycles overlap, and a cron without a timeout', () => {
    expect(() => parseStageConfig({ executionTimeoutMinutes: 15 })).toThrow(
      /executionTimeoutMinutes 15 must be below the schedule period of 15 minutes/,
    );
    expect(() => parseStageConfig({ schedule: 'cron(0/15 * * * ? *)' })).toThrow(
      /set executionTimeoutMinutes/,
    );
    expect(parseStageConfig({ schedule: 'cron(0/15 * * * ? *)', executionTimeoutMinutes: 10 }).schedule).toBe(
      'cron(0/15 * * * ? *)',
    );
  });

  it('names the field, the value and the expectation when input is wrong', () => {
    const bad: [unknown, RegExp][] = [
      [{ stage: 'Prod' }, /stage: must be lower case/],
      [{ schedule: 'every 15 minutes' }, /schedule: must be rate\(N minutes\|hours\) or cron/],
      [
        { secrets: { clickhouseArn: 'my-secret' } },
        /secrets\.clickhouseArn: must be a Secrets Manager secret ARN/,
      ],
      [{ vpc: { vpcId: 'vpc-0abc', subnetIds: [], availabilityZones: ['eu-west-1a'] } }, /vpc\.subnetIds/],
      [
        { notifications: { page: [{ protocol: 'https', endpoint: 'http://example.com/hook' }] } },
        /notifications\.page\.0\.endpoint/,
      ],
      [{ emr: { releaseLabel: 'emr-6.15.0' } }, /emr\.releaseLabel: must be an EMR 7\.x release label/],
      [{ maxConcurency: 4 }, /Unrecognized key.*maxConcurency/],
      [{ alarms: { lagWarningMinutes: 40 } }, /lagWarningMinutes must be below alarms\.lagCriticalMinutes/],
      [{ logRetentionDays: 10 }, /logRetentionDays: must be one of 1, 3, 5, 7, 14, 30/],
    ];
    for (const [input, message] of bad) {
      expect(() => parseStageConfig(input, 'stage.json'), JSON.stringify(input)).toThrow(message);
      expect(() => parseStageConfig(input, 'stage.json')).toThrow(ConfigError);
    }
  });

  it('loads from a file named in context, else from the k2-offload context object', () => {
    const fromContext = loadStageConfig((key) => (key === 'k2-offload' ? { stage: 'prod' } : undefined));
    expect(fromContext.stage).toBe('prod');
    expect(() =>
      loadStageConfig((key) => (key === 'stageConfig' ? '/nonexistent/stage.json' : undefined)),
    ).toThrow(/cannot read stage config \/nonexistent\/stage.json/);
  });
});
