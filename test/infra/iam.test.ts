import { Validations } from 'aws-cdk-lib';
import { Match } from 'aws-cdk-lib/assertions';
import type { IConstruct } from 'constructs';
import { beforeAll, describe, expect, it } from 'vitest';
import { FUNCTION_ACCESS } from '../../lib/constructs/offload-functions.ts';
import { asArray, logicalIdOf, printed, type Synthesized, statementsOfRole, synthesize } from './support.ts';

let synth: Synthesized;
type Grant = { actions: string[]; resources: string[] };
let grantsOf: (roleId: string) => Grant[];
let functionRole: (name: string) => string;

beforeAll(() => {
  synth = synthesize();
  grantsOf = (roleId) =>
    statementsOfRole(synth.template, roleId).map((s) => ({
      actions: asArray(s.Action as string | string[]),
      resources: asArray(s.Resource).map(printed),
    }));
  functionRole = (name) => {
    const fn = synth.template.toJSON().Resources[
      logicalIdOf(
        synth.template,
        'AWS::Lambda::Function',
        (r) => r.Properties.FunctionName === `k2-offload-test-${name}`,
      )
    ] as { Properties: { Role: { 'Fn::GetAtt': [string, string] } } };
    return fn.Properties.Role['Fn::GetAtt'][0];
  };
});

/** Resources a role may use an action on. */
const resourcesFor = (grants: Grant[], action: string) =>
  grants.filter((g) => g.actions.includes(action)).flatMap((g) => g.resources);

describe('function roles', () => {
  it('never grant a whole service or every resource, except X-Ray which has no resource-level permissions', () => {
    for (const name of Object.keys(FUNCTION_ACCESS)) {
      for (const g of grantsOf(functionRole(name))) {
        for (const a of g.actions) expect(a, name).not.toMatch(/^[a-z0-9-]+:\*$|^\*$/);
        if (g.resources.includes('*'))
          expect(
            g.actions.every((a) => a.startsWith('xray:')),
            name,
          ).toBe(true);
      }
    }
  });

  it('write objects only from the planner (new tables), the stager (data folders) and the committer, in the table folders', () => {
    const put = (name: string) => resourcesFor(grantsOf(functionRole(name)), 's3:PutObject');
    const tableFolders = expect.stringMatching(/^<WarehouseBucket[0-9A-F]+\.Arn>\/cold\/\*$/);
    expect(put('commit-batch')).toEqual([tableFolders]);
    expect(put('stage-batch')).toEqual([
      expect.stringMatching(/^<WarehouseBucket[0-9A-F]+\.Arn>\/cold\/\*\/data\/\*$/),
    ]);
    // The planner also hands each table's plan to the state machine as an object (expired with staging).
    const plans = expect.stringMatching(/^<WarehouseBucket[0-9A-F]+\.Arn>\/staging\/plans\/\*$/);
    expect(put('plan-cycle')).toHaveLength(2);
    expect(put('plan-cycle')).toEqual(expect.arrayContaining([tableFolders, plans]));
    for (const name of ['commit-watermark', 'record-failure', 'publish-cycle', 'health'])
      expect(put(name), name).toEqual([]);
    // The stager creates files and nothing else: even a stalled one cannot delete or list what a
    // snapshot refers to.
    const stager = grantsOf(functionRole('stage-batch')).flatMap((g) => g.actions);
    expect(stager.filter((a) => /^s3:(Delete|List)/.test(a))).toEqual([]);
  });

  it('create Glue tables only from the planner and change them only from the committer, in the stage database', () => {
    const arns = [
      'arn:<AWS::Partition>:glue:<AWS::Region>:<AWS::AccountId>:catalog',
      'arn:<AWS::Partition>:glue:<AWS::Region>:<AWS::AccountId>:database/cold',
      'arn:<AWS::Partition>:glue:<AWS::Region>:<AWS::AccountId>:table/cold/*',
    ];
    const on = (name: string, action: string) => resourcesFor(grantsOf(functionRole(name)), action);
    expect(on('plan-cycle', 'glue:CreateTable')).toEqual(arns);
    expect(on('commit-batch', 'glue:UpdateTable')).toEqual(arns);
    for (const name of Object.keys(FUNCTION_ACCESS)) {
      if (name !== 'plan-cycle') expect(on(name, 'glue:CreateTable'), name).toEqual([]);
      if (name !== 'commit-batch') expect(on(name, 'glue:UpdateTable'), name).toEqual([]);
      expect(on(name, 'glue:CreateDatabase'), name).toEqual([]);
    }
    // StageBatch's first call is GetTable (is the batch already in Iceberg?).
    expect(on('stage-batch', 'glue:GetTable')).toEqual(arns);
  });

  it('read each secret only where it is needed: value only, never describe or change it', () => {
    const secrets = (name: string) =>
      resourcesFor(grantsOf(functionRole(name)), 'secretsmanager:GetSecretValue').map((r) =>
        r.replace(/[0-9A-F]{8}>$/, '>'),
      );
    // StageBatch checks its lease in Postgres just before its first write.
    expect(secrets('stage-batch').sort()).toEqual(['<ClickHouseSecret>', '<PostgresSecret>']);
    expect(secrets('commit-watermark')).toEqual(['<PostgresSecret>']);
    // The per-hour check at the end of each cycle reads ClickHouse and the ledger.
    expect(secrets('publish-cycle').sort()).toEqual(['<ClickHouseSecret>', '<PostgresSecret>']);
    for (const name of Object.keys(FUNCTION_ACCESS))
      for (const g of grantsOf(functionRole(name)))
        expect(
          g.actions.filter((a) => a.startsWith('secretsmanager:') && a !== 'secretsmanager:GetSecretValue'),
          name,
        ).toEqual([]);
  });

  it('write logs only to their own log group', () => {
    const grants = grantsOf(functionRole('stage-batch'));
    expect(resourcesFor(grants, 'logs:CreateLogStream')).toEqual([
      expect.stringMatching(/:log-group:<FunctionsstagebatchLogs[0-9A-F]+>$/),
    ]);
    expect(resourcesFor(grants, 'logs:PutLogEvents')).toEqual([
      expect.stringMatching(/:log-group:<FunctionsstagebatchLogs[0-9A-F]+>:log-stream:\*$/),
    ]);
  });
});

describe('the Spark job role', () => {
  it('reads and writes only the table folders of the stage database and its logs, and passes to EMR only', () => {
    const role = logicalIdOf(synth.template, 'AWS::IAM::Role', (r) =>
      JSON.stringify(r.Properties.AssumeRolePolicyDocument).includes('emr-serverless.amazonaws.com'),
    );
    const grants = grantsOf(role);
    expect(resourcesFor(grants, 's3:PutObject')).toEqual([
      expect.stringMatching(/\/cold\/\*$/),
      expect.stringMatching(/\/logs\/emr\/\*$/),
    ]);
    expect(resourcesFor(grants, 'glue:UpdateTable')).toContain(
      'arn:<AWS::Partition>:glue:<AWS::Region>:<AWS::AccountId>:table/cold/*',
    );
    const machineRole = logicalIdOf(synth.template, 'AWS::IAM::Role', (r) =>
      JSON.stringify(r.Properties.AssumeRolePolicyDocument).includes('states.amazonaws.com'),
    );
    const pass = statementsOfRole(synth.template, machineRole).filter((s) => s.Action === 'iam:PassRole');
    expect(pass).toEqual([
      expect.objectContaining({
        Resource: { 'Fn::GetAtt': [role, 'Arn'] },
        Condition: { StringEquals: { 'iam:PassedToService': 'emr-serverless.amazonaws.com' } },
      }),
    ]);
  });
});

describe('the EMR Serverless application', () => {
  it('is Spark on EMR 7, starts on demand, stops when idle, and is capped', () => {
    synth.template.hasResourceProperties('AWS::EMRServerless::Application', {
      Type: 'SPARK',
      ReleaseLabel: Match.stringLikeRegexp('^emr-7\\.'),
      AutoStartConfiguration: { Enabled: true },
      AutoStopConfiguration: { Enabled: true, IdleTimeoutMinutes: 15 },
      MaximumCapacity: { Cpu: '16 vCPU', Memory: '64 GB' },
    });
  });
});

describe('the warehouse bucket', () => {
  it('is encrypted, private, SSL only, logged, and expires staged files', () => {
    synth.template.hasResourceProperties('AWS::S3::Bucket', {
      BucketEncryption: {
        ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }],
      },
      PublicAccessBlockConfiguration: {
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      },
      LoggingConfiguration: Match.objectLike({ DestinationBucketName: Match.anyValue() }),
      LifecycleConfiguration: {
        Rules: [Match.objectLike({ Prefix: 'staging/', ExpirationInDays: 7, Status: 'Enabled' })],
      },
    });
    const bucket = logicalIdOf(
      synth.template,
      'AWS::S3::Bucket',
      (r) =>
        r.Properties.LifecycleConfiguration !== undefined &&
        JSON.stringify(r.Properties.LifecycleConfiguration).includes('staging/'),
    );
    synth.template.hasResourceProperties('AWS::S3::BucketPolicy', {
      Bucket: { Ref: bucket },
      PolicyDocument: {
        Statement: [
          Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
        ],
      },
    });
  });
});

describe('cdk-nag AwsSolutions', () => {
  it('pass cdk-nag with every acknowledgment carrying a reason (synthesis throws on any other finding)', () => {
    const { stack } = synth;
    const acknowledged: [string, string][] = [];
    const onStack: string[] = [];
    const walk = (node: IConstruct) => {
      for (const entry of node.node.metadata)
        if (entry.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY)
          for (const [id, value] of Object.entries(entry.data as Record<string, unknown>)) {
            acknowledged.push([id, typeof value === 'string' ? value : JSON.stringify(value)]);
            if (node === stack) onStack.push(id);
          }
      for (const child of node.node.children) walk(child);
    };
    walk(stack);
    // Each acknowledgment sits on the resource it concerns (a role, a secret, a bucket), never stack-wide.
    expect(onStack).toEqual([]);
    const ours = acknowledged.filter(([id]) => id.includes('AwsSolutions'));
    expect(ours.length).toBeGreaterThan(0);
    for (const [id, reason] of ours) {
      expect(id).toMatch(/AwsSolutions-(L1|SMG4|S1|SQS3|IAM5\[(Resource|Action)::.+\])$/);
      expect(reason.length, id).toBeGreaterThan(30);
    }
  });
});
