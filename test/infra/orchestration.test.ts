import { Match } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { STAGING_PREFIX } from '../../lib/constructs/warehouse.ts';
import {
  PLAN_PREFIX,
  RETRY_ERROR_NAMES,
  S3_RETRY_ERROR_NAMES,
  STATE_NAMES,
} from '../../src/orchestration/asl.ts';
import {
  logicalIdOf,
  printed,
  resourcesOfType,
  type Synthesized,
  stateMachineDefinition,
  synthesize,
} from './support.ts';

type State = Record<string, unknown> & { ItemProcessor?: { States: Record<string, State> } };

let synth: Synthesized;
let states: Map<string, State>;
let fnId: (name: string) => string;

beforeAll(() => {
  synth = synthesize({ maxConcurrency: 5 });
  const definition = stateMachineDefinition(synth.template) as { States: Record<string, State> };
  states = new Map();
  const walk = (scope: Record<string, State>) => {
    for (const [name, s] of Object.entries(scope)) {
      states.set(name, s);
      if (s.ItemProcessor) walk(s.ItemProcessor.States);
    }
  };
  walk(definition.States);
  fnId = (name) =>
    logicalIdOf(
      synth.template,
      'AWS::Lambda::Function',
      (r) => r.Properties.FunctionName === `k2-offload-test-${name}`,
    );
});

describe('the cycle is scheduled', () => {
  it('starts the state machine every 15 minutes with empty input', () => {
    const machine = logicalIdOf(synth.template, 'AWS::StepFunctions::StateMachine', () => true);
    synth.template.hasResourceProperties('AWS::Events::Rule', {
      ScheduleExpression: 'rate(15 minutes)',
      State: 'ENABLED',
      Targets: [Match.objectLike({ Arn: { Ref: machine }, Input: '{}' })],
    });
  });

  it('runs the health function every 5 minutes', () => {
    synth.template.hasResourceProperties('AWS::Events::Rule', {
      ScheduleExpression: 'rate(5 minutes)',
      Targets: [Match.objectLike({ Arn: { 'Fn::GetAtt': [fnId('health'), 'Arn'] } })],
    });
  });
});

describe('the state machine', () => {
  it('logs every event, is traced, and times out before the next scheduled cycle', () => {
    synth.template.hasResourceProperties('AWS::StepFunctions::StateMachine', {
      StateMachineName: 'k2-offload-test-cycle',
      TracingConfiguration: { Enabled: true },
      LoggingConfiguration: Match.objectLike({ Level: 'ALL', IncludeExecutionData: true }),
    });
    const definition = stateMachineDefinition(synth.template);
    expect(definition.TimeoutSeconds).toBe(14 * 60);
  });

  it('binds each task to its function and the Spark task to the EMR application', () => {
    const bound: [string, string][] = [
      [STATE_NAMES.planCycle, 'plan-cycle'],
      [STATE_NAMES.stageBatch, 'stage-batch'],
      [STATE_NAMES.commitBatchLambda, 'commit-batch'],
      [STATE_NAMES.commitWatermark, 'commit-watermark'],
      [STATE_NAMES.recordFailure, 'record-failure'],
      [STATE_NAMES.publishCycle, 'publish-cycle'],
    ];
    for (const [state, fn] of bound) expect(states.get(state)?.Resource, state).toBe(`<${fnId(fn)}.Arn>`);
    const app = logicalIdOf(synth.template, 'AWS::EMRServerless::Application', () => true);
    const emr = states.get(STATE_NAMES.commitBatchEmr) as { Parameters: Record<string, unknown> };
    expect(emr.Parameters.ApplicationId).toBe(`<${app}.ApplicationId>`);
    expect(emr.Parameters.ExecutionRoleArn).toMatch(/^<SparkCommitJobRole[0-9A-F]+\.Arn>$/);
    // The job script is a CDK file asset (jobs/spark/commit_batch.py), stored under its content hash.
    expect(emr.Parameters.JobDriver).toMatchObject({
      SparkSubmit: {
        EntryPoint: expect.stringMatching(/^s3:\/\/cdk-[a-z0-9]+-assets-.*\/[0-9a-f]{64}\.py$/),
      },
    });
  });

  it('runs layers and batches one at a time and tables with the configured concurrency', () => {
    expect(states.get(STATE_NAMES.runLayers)?.MaxConcurrency).toBe(1);
    expect(states.get(STATE_NAMES.runTables)?.MaxConcurrency).toBe(5);
    expect(states.get(STATE_NAMES.runBatches)?.MaxConcurrency).toBe(1);
  });

  it('retries only retryable errors and catches a table failure into RecordFailure', () => {
    for (const [name, s] of states) {
      for (const retrier of (s.Retry as { ErrorEquals: string[] }[] | undefined) ?? [])
        expect(retrier.ErrorEquals, name).toEqual(
          name === STATE_NAMES.loadTablePlan ? [...S3_RETRY_ERROR_NAMES] : [...RETRY_ERROR_NAMES],
        );
    }
    expect(states.get(STATE_NAMES.runBatches)?.Catch).toEqual([
      { ErrorEquals: ['States.ALL'], ResultPath: '$.error', Next: STATE_NAMES.recordFailure },
    ]);
  });

  it('may invoke the six cycle functions and nothing else', () => {
    const role = logicalIdOf(synth.template, 'AWS::IAM::Role', (r) =>
      JSON.stringify(r.Properties.AssumeRolePolicyDocument).includes('states.amazonaws.com'),
    );
    const policies = resourcesOfType(synth.template, 'AWS::IAM::Policy').filter(([, p]) =>
      (p.Properties.Roles as { Ref: string }[]).some((r) => r.Ref === role),
    );
    const invoke = policies
      .flatMap(([, p]) => (p.Properties.PolicyDocument as { Statement: Record<string, unknown>[] }).Statement)
      .filter((s) => JSON.stringify(s.Action).includes('lambda:InvokeFunction'));
    const targets = new Set(JSON.stringify(invoke).match(/Functions[a-z]+Function[0-9A-F]+/g));
    expect([...targets].sort()).toEqual(
      ['plan-cycle', 'stage-batch', 'commit-batch', 'commit-watermark', 'record-failure', 'publish-cycle']
        .map(fnId)
        .sort(),
    );
  });
});

describe('the plan hand-off', () => {
  const statementsOf = (roleId: string) =>
    resourcesOfType(synth.template, 'AWS::IAM::Policy')
      .filter(([, p]) => (p.Properties.Roles as { Ref: string }[]).some((r) => r.Ref === roleId))
      .flatMap(
        ([, p]) => (p.Properties.PolicyDocument as { Statement: Record<string, unknown>[] }).Statement,
      );
  const onPlans = (statements: Record<string, unknown>[], action: string) =>
    statements.filter(
      (s) =>
        [s.Action].flat().includes(action) &&
        [s.Resource].flat().some((r) => printed(r).endsWith(`/${PLAN_PREFIX}*`)),
    );

  it('lets PlanCycle write plan objects and the state machine read them, under the expiring staging prefix', () => {
    expect(PLAN_PREFIX.startsWith(STAGING_PREFIX)).toBe(true);
    const machineRole = logicalIdOf(synth.template, 'AWS::IAM::Role', (r) =>
      JSON.stringify(r.Properties.AssumeRolePolicyDocument).includes('states.amazonaws.com'),
    );
    const planRole = (
      synth.template.toJSON().Resources[fnId('plan-cycle')] as {
        Properties: { Role: { 'Fn::GetAtt': string[] } };
      }
    ).Properties.Role['Fn::GetAtt'][0] as string;
    expect(onPlans(statementsOf(machineRole), 's3:GetObject')).toHaveLength(1);
    expect(onPlans(statementsOf(planRole), 's3:PutObject')).toHaveLength(1);
    expect(onPlans(statementsOf(machineRole), 's3:PutObject')).toEqual([]);
  });
});

describe('the functions', () => {
  it('run Node 22 on ARM64 with source maps and X-Ray, outside any VPC by default', () => {
    const functions = resourcesOfType(synth.template, 'AWS::Lambda::Function');
    expect(functions).toHaveLength(7);
    for (const [, fn] of functions) {
      expect(fn.Properties).toMatchObject({
        Runtime: 'nodejs22.x',
        Architectures: ['arm64'],
        TracingConfig: { Mode: 'Active' },
        Environment: { Variables: expect.objectContaining({ NODE_OPTIONS: '--enable-source-maps' }) },
      });
      expect(fn.Properties.VpcConfig).toBeUndefined();
    }
  });

  it('get configuration from the environment, secrets only as ARNs', () => {
    const env = (name: string) =>
      (
        synth.template.toJSON().Resources[fnId(name)] as {
          Properties: { Environment: { Variables: object } };
        }
      ).Properties.Environment.Variables;
    expect(env('stage-batch')).toMatchObject({
      K2_STAGE: 'test',
      K2_CATALOG: 'glue',
      K2_LEASE_SECONDS: '900',
      // Half the 14-minute execution timeout: the last loop-back pass has the other half.
      K2_CYCLE_BUDGET_SECONDS: '420',
      WAREHOUSE: expect.objectContaining({ 'Fn::Join': expect.anything() }),
      K2_CLICKHOUSE_SECRET_ARN: { Ref: expect.stringMatching(/^ClickHouseSecret/) },
      K2_POSTGRES_SECRET_ARN: { Ref: expect.stringMatching(/^PostgresSecret/) },
    });
    expect(env('stage-batch')).not.toHaveProperty('K2_CONFIG');
    expect(env('publish-cycle')).not.toHaveProperty('K2_POSTGRES_SECRET_ARN');
    expect(env('commit-batch')).not.toHaveProperty('K2_CLICKHOUSE_SECRET_ARN');
    for (const [, fn] of resourcesOfType(synth.template, 'AWS::Lambda::Function'))
      expect(JSON.stringify(fn.Properties.Environment)).not.toMatch(/password|:\/\/[^"]*@/i);
  });

  it('keep their logs for the configured retention', () => {
    synth.template.hasResourceProperties('AWS::Logs::LogGroup', {
      LogGroupName: '/aws/lambda/k2-offload-test-stage-batch',
      RetentionInDays: 30,
    });
  });
});
