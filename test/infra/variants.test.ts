import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.ts';
import {
  asArray,
  logicalIdOf,
  onlyResource,
  PROJECT_ROOT,
  printed,
  resourcesOfType,
  type Synthesized,
  stateMachineDefinition,
  statementsOfRole,
  synthesize,
} from './support.ts';

const CLICKHOUSE = 'arn:aws:secretsmanager:eu-west-1:111122223333:secret:k2/clickhouse-AbCdEf';
const POSTGRES = 'arn:aws:secretsmanager:eu-west-1:111122223333:secret:k2/postgres-GhIjKl';
const TABLES = 'test/infra/fixtures/tables.json';
const BUCKET_KEY = 'arn:aws:kms:eu-west-1:111122223333:key/1111aaaa-2222-3333-4444-555566667777';
const SECRETS_KEY = 'arn:aws:kms:eu-west-1:111122223333:key/9999aaaa-2222-3333-4444-555566667777';

let synth: Synthesized;

beforeAll(async () => {
  synth = synthesize(
    {
      stage: 'prod',
      schedule: 'rate(30 minutes)',
      tablesConfig: TABLES,
      vpc: {
        vpcId: 'vpc-0a1b2c3d',
        subnetIds: ['subnet-0aaa1111', 'subnet-0bbb2222'],
        availabilityZones: ['eu-west-1a', 'eu-west-1b'],
        routeTableIds: ['rtb-0aaa1111', 'rtb-0bbb2222'],
      },
      secrets: { clickhouseArn: CLICKHOUSE, postgresArn: POSTGRES },
      encryption: { bucketKeyArn: BUCKET_KEY, secretsKeyArn: SECRETS_KEY },
      warehouse: { bucketName: 'k2-cold-tier-prod' },
      createGlueDatabase: false,
    },
    await loadConfig(join(PROJECT_ROOT, TABLES)),
  );
});

const fn = (name: string) =>
  synth.template.toJSON().Resources[
    logicalIdOf(
      synth.template,
      'AWS::Lambda::Function',
      (r) => r.Properties.FunctionName === `k2-offload-prod-${name}`,
    )
  ] as { Properties: Record<string, unknown> };

describe('a stage with its own VPC, bucket, secrets and table config', () => {
  it('creates no bucket, secret or Glue database of its own', () => {
    expect(resourcesOfType(synth.template, 'AWS::S3::Bucket')).toEqual([]);
    expect(resourcesOfType(synth.template, 'AWS::SecretsManager::Secret')).toEqual([]);
    expect(resourcesOfType(synth.template, 'AWS::Glue::Database')).toEqual([]);
  });

  it('puts the functions that reach ClickHouse or Postgres in the VPC subnets (publish-cycle runs the per-hour check)', () => {
    for (const name of ['stage-batch', 'publish-cycle'])
      expect(fn(name).Properties.VpcConfig, name).toMatchObject({
        SubnetIds: ['subnet-0aaa1111', 'subnet-0bbb2222'],
        SecurityGroupIds: [expect.anything()],
      });
    const role = (fn('stage-batch').Properties.Role as { 'Fn::GetAtt': [string] })['Fn::GetAtt'][0];
    const eni = statementsOfRole(synth.template, role).find((s) =>
      asArray(s.Action as string[]).includes('ec2:CreateNetworkInterface'),
    );
    expect(eni).toMatchObject({ Effect: 'Allow', Resource: '*' });
  });

  it('adds the VPC endpoints of the APIs the functions call, reachable from the functions only', () => {
    const endpoints = resourcesOfType(synth.template, 'AWS::EC2::VPCEndpoint').map(([, r]) => r.Properties);
    expect(endpoints.map((e) => JSON.stringify(e.ServiceName)).sort()).toEqual([
      expect.stringContaining('.glue'),
      expect.stringContaining('.s3'),
      expect.stringContaining('.secretsmanager'),
    ]);
    const gateway = endpoints.find((e) => e.VpcEndpointType === 'Gateway');
    expect(gateway?.RouteTableIds).toEqual(['rtb-0aaa1111', 'rtb-0bbb2222']);
    for (const e of endpoints.filter((x) => x.VpcEndpointType === 'Interface'))
      expect(e).toMatchObject({ PrivateDnsEnabled: true, SubnetIds: ['subnet-0aaa1111', 'subnet-0bbb2222'] });
  });

  it('may decrypt with the customer keys of the bucket and the secrets, only through S3 and Secrets Manager', () => {
    const role = (fn('stage-batch').Properties.Role as { 'Fn::GetAtt': [string] })['Fn::GetAtt'][0];
    const kms = statementsOfRole(synth.template, role).filter((s) =>
      asArray(s.Action as string[]).some((a) => a.startsWith('kms:')),
    );
    expect(kms).toEqual([
      expect.objectContaining({
        Action: ['kms:Decrypt', 'kms:GenerateDataKey'],
        Resource: BUCKET_KEY,
        Condition: {
          StringEquals: { 'kms:ViaService': expect.objectContaining({ 'Fn::Join': expect.anything() }) },
        },
      }),
      expect.objectContaining({ Action: 'kms:Decrypt', Resource: SECRETS_KEY }),
    ]);
    // The publish step reads the secrets (the per-hour check), never the bucket: the secrets key only.
    const publish = (fn('publish-cycle').Properties.Role as { 'Fn::GetAtt': [string] })['Fn::GetAtt'][0];
    const publishKms = statementsOfRole(synth.template, publish).filter((s) =>
      asArray(s.Action as string[]).some((a) => a.startsWith('kms:')),
    );
    expect(publishKms).toEqual([expect.objectContaining({ Action: 'kms:Decrypt', Resource: SECRETS_KEY })]);
  });

  it('grants on the given bucket and secrets by name and ARN', () => {
    const role = (fn('stage-batch').Properties.Role as { 'Fn::GetAtt': [string] })['Fn::GetAtt'][0];
    const statements = statementsOfRole(synth.template, role);
    const resources = (action: string) =>
      statements
        .filter((s) => asArray(s.Action as string[]).includes(action))
        .flatMap((s) => asArray(s.Resource).map(printed));
    expect(resources('s3:PutObject')).toEqual(['arn:<AWS::Partition>:s3:::k2-cold-tier-prod/cold/*/data/*']);
    expect(resources('secretsmanager:GetSecretValue')).toEqual([CLICKHOUSE, POSTGRES]);
    expect(fn('stage-batch').Properties.Environment).toMatchObject({
      Variables: {
        WAREHOUSE: 's3://k2-cold-tier-prod',
        K2_CONFIG: '/var/task/tables.json',
        K2_LEASE_SECONDS: '1800',
        K2_CYCLE_BUDGET_SECONDS: '870',
      },
    });
  });

  it('bundles the table config next to each function', () => {
    const code = fn('plan-cycle').Properties.Code as { S3Key: string };
    const asset = join(synth.outdir, `asset.${code.S3Key.replace(/\.zip$/, '')}`);
    expect(existsSync(join(asset, 'index.mjs'))).toBe(true);
    expect(JSON.parse(readFileSync(join(asset, 'tables.json'), 'utf8')).tables[0].committer).toBe('emr');
  });

  it('times the cycle out before the next one on a 30-minute schedule', () => {
    synth.template.hasResourceProperties('AWS::Events::Rule', { ScheduleExpression: 'rate(30 minutes)' });
    expect(stateMachineDefinition(synth.template).TimeoutSeconds).toBe(29 * 60);
    synth.template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      AlarmName: 'k2-offload-prod-IcebergOffloadCycleTooSlow',
      Period: 1800,
    });
  });

  it('lists only the configured tables on the dashboard', () => {
    const dashboard = onlyResource(synth.template, 'AWS::CloudWatch::Dashboard');
    const body = JSON.stringify(dashboard.Properties.DashboardBody);
    expect(body).toContain('bronze_trades_binance');
    expect(body).not.toContain('silver_trades');
  });
});

describe('stage and table config that disagree', () => {
  it('is refused at synth, naming the table and what to change', async () => {
    const tables = await loadConfig(join(PROJECT_ROOT, TABLES));
    expect(() => synthesize({ glueDatabase: 'archive' }, tables)).toThrow(
      /table bronze_trades_binance: target namespace cold is not the stage's Glue database archive/,
    );
  });

  it('is refused when a function entry is missing, naming the file', () => {
    expect(() => synthesize({}, undefined, join(PROJECT_ROOT, 'test', 'infra', 'no-such-dir'))).toThrow(
      /function plan-cycle: entry .*no-such-dir\/plan-cycle\/index\.ts does not exist/,
    );
  });
});
