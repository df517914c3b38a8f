import { Match } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { commitJobSize } from '../../lib/constructs/emr-sizing.ts';
import { FUNCTION_NAMES } from '../../lib/constructs/offload-function.ts';
import { STAGING_PREFIX } from '../../lib/constructs/warehouse.ts';
import {
  PLAN_PREFIX,
  RETRY_ERROR_NAMES,
  S3_RETRY_ERROR_NAMES,
  STATE_NAMES,
} from '../../src/orchestration/asl.ts';
import { EMR_RETRY_ERROR_NAMES } from '../../src/orchestration/emr-states.ts';
import {
  asArray,
  logicalIdOf,
  onlyResource,
  printed,
  resourcesOfType,
  type Synthesized,
  stateMachineDefinition,
  statementsOfRole,
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
  it('starts the state machine every 15 minutes with empty input, switched off in a non-production stage, with a dead-letter queue', () => {
    const machine = logicalIdOf(synth.template, 'AWS::StepFunctions::StateMachine', () => true);
    const queue = logicalIdOf(
      synth.template,
      'AWS::SQS::Queue',
      (r) => r.Properties.QueueName === 'k2-offload-test-cycle-dlq',
    );
    synth.template.hasResourceProperties('AWS::Events::Rule', {
      ScheduleExpression: 'rate(15 minutes)',
      State: 'DISABLED',
      Targets: [
        Match.objectLike({
          Arn: { Ref: machine },
          Input: '{}',
          DeadLetterConfig: { Arn: { 'Fn::GetAtt': [queue, 'Arn'] } },
        }),
      ],
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
      [STATE_NAMES.extendLease, 'extend-lease'],
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
          name === STATE_NAMES.loadTablePlan
            ? [...S3_RETRY_ERROR_NAMES]
            : name === STATE_NAMES.commitBatchEmr || name === STATE_NAMES.getEmrJob
              ? [...EMR_RETRY_ERROR_NAMES]
              : [...RETRY_ERROR_NAMES],
        );
    }
    expect(states.get(STATE_NAMES.runBatches)?.Catch).toEqual([
      { ErrorEquals: ['States.ALL'], ResultPath: '$.error', Next: STATE_NAMES.recordFailure },
    ]);
  });

  it('may invoke the seven cycle functions and nothing else', () => {
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
    // Every function but health, which its own schedule invokes.
    const cycleFunctions = FUNCTION_NAMES.filter((name) => name !== 'health');
    expect(cycleFunctions).toHaveLength(7);
    expect([...targets].sort()).toEqual(cycleFunctions.map(fnId).sort());
  });
});

describe('the Spark commit job', () => {
  const emrState = () =>
    states.get(STATE_NAMES.commitBatchEmr) as {
      Parameters: {
        ExecutionTimeoutMinutes: number;
        JobDriver: { SparkSubmit: { SparkSubmitParameters: string } };
      };
    };
  const conf = () =>
    Object.fromEntries(
      [
        ...emrState().Parameters.JobDriver.SparkSubmit.SparkSubmitParameters.matchAll(
          /--conf ([^=\s]+)=(\S+)/g,
        ),
      ].map((m) => [m[1], m[2]]),
    ) as Record<string, string>;

  it('is sized so that maxConcurrency jobs fit the application capacity together', () => {
    const c = conf();
    // What EMR Serverless reserves for a worker: its cores, and its memory plus overhead (10%, >= 384 MB)
    // rounded up to whole GB.
    const worker = (cores: string, memory: string) => {
      const gb = Number(memory.replace(/g$/, ''));
      return { cpu: Number(cores), memoryGb: Math.ceil(gb + Math.max(0.384, gb * 0.1)) };
    };
    const driver = worker(c['spark.driver.cores'] ?? '', c['spark.driver.memory'] ?? '');
    const executor = worker(c['spark.executor.cores'] ?? '', c['spark.executor.memory'] ?? '');
    const executors = Number(c['spark.dynamicAllocation.maxExecutors']);
    expect(executors).toBeGreaterThanOrEqual(1);
    const job = {
      cpu: driver.cpu + executors * executor.cpu,
      memoryGb: driver.memoryGb + executors * executor.memoryGb,
    };
    const app = onlyResource(synth.template, 'AWS::EMRServerless::Application').Properties as {
      MaximumCapacity: { Cpu: string; Memory: string };
    };
    const maxConcurrency = states.get(STATE_NAMES.runTables)?.MaxConcurrency as number;
    expect(maxConcurrency).toBe(5);
    expect(maxConcurrency * job.cpu).toBeLessThanOrEqual(Number.parseInt(app.MaximumCapacity.Cpu, 10));
    expect(maxConcurrency * job.memoryGb).toBeLessThanOrEqual(
      Number.parseInt(app.MaximumCapacity.Memory, 10),
    );
  });

  it('refuses at synth a capacity that cannot hold maxConcurrency jobs, and shares it out otherwise', () => {
    expect(commitJobSize({ maxCpu: '16 vCPU', maxMemory: '64 GB', maxConcurrency: 4 })).toMatchObject({
      maxExecutors: 3,
      footprint: { cpu: 4, memoryGb: 16 },
    });
    expect(commitJobSize({ maxCpu: '16 vCPU', maxMemory: '32 GB', maxConcurrency: 4 }).maxExecutors).toBe(1);
    expect(() => commitJobSize({ maxCpu: '16 vCPU', maxMemory: '64 GB', maxConcurrency: 10 })).toThrow(
      /cannot run 10 commit jobs at once \(maxConcurrency\): each needs at least 2 vCPU and 8 GB/,
    );
  });

  it('ends inside the execution and its lease, which a heartbeat extends while it runs', () => {
    const definition = stateMachineDefinition(synth.template);
    const jobSeconds = emrState().Parameters.ExecutionTimeoutMinutes * 60;
    const env = (
      synth.template.toJSON().Resources[fnId('extend-lease')] as {
        Properties: { Environment: { Variables: Record<string, string> } };
      }
    ).Properties.Environment.Variables;
    expect(jobSeconds).toBeLessThan(definition.TimeoutSeconds as number);
    expect(jobSeconds).toBeLessThan(Number(env.K2_LEASE_SECONDS));
    const poll = states.get(STATE_NAMES.waitForEmrJob) as { Seconds: number; Next: string };
    expect(poll.Next).toBe(STATE_NAMES.extendLease);
    expect(poll.Seconds * 4).toBeLessThanOrEqual(Number(env.K2_LEASE_SECONDS));
  });

  it('reads its own script object only, not the whole assets bucket', () => {
    const role = logicalIdOf(synth.template, 'AWS::IAM::Role', (r) =>
      JSON.stringify(r.Properties.AssumeRolePolicyDocument).includes('emr-serverless.amazonaws.com'),
    );
    const assets = statementsOfRole(synth.template, role)
      .flatMap((st) => asArray(st.Resource as unknown))
      .map(printed)
      .filter((r) => r.includes('cdk-') && r.includes('assets'));
    expect(assets).toEqual([
      expect.stringMatching(/^arn:[^*]*:s3:::cdk-[a-z0-9]+-assets-[^/*]+\/[0-9a-f]{64}\.py$/),
    ]);
  });

  it('is started and polled by the state machine, which needs no .sync rule and cancels nothing', () => {
    const machineRole = logicalIdOf(synth.template, 'AWS::IAM::Role', (r) =>
      JSON.stringify(r.Properties.AssumeRolePolicyDocument).includes('states.amazonaws.com'),
    );
    const actions = statementsOfRole(synth.template, machineRole).flatMap((st) =>
      asArray(st.Action as string),
    );
    expect(actions.filter((a) => a.startsWith('emr-serverless:')).sort()).toEqual([
      'emr-serverless:GetJobRun',
      'emr-serverless:StartJobRun',
    ]);
    expect(actions.filter((a) => a.startsWith('events:'))).toEqual([]);
  });
});

describe('the plan hand-off', () => {
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
    expect(onPlans(statementsOfRole(synth.template, machineRole), 's3:GetObject')).toHaveLength(1);
    expect(onPlans(statementsOfRole(synth.template, planRole), 's3:PutObject')).toHaveLength(1);
    expect(onPlans(statementsOfRole(synth.template, machineRole), 's3:PutObject')).toEqual([]);
  });
});

describe('the functions', () => {
  it('run Node 22 on ARM64 with source maps and X-Ray, outside any VPC by default', () => {
    const functions = resourcesOfType(synth.template, 'AWS::Lambda::Function');
    expect(functions).toHaveLength(8);
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
    });
    // StageBatch checks its lease in Postgres before writing; the planner takes it there.
    expect(env('stage-batch')).toMatchObject({
      K2_POSTGRES_SECRET_ARN: { Ref: expect.stringMatching(/^PostgresSecret/) },
    });
    expect(env('plan-cycle')).toMatchObject({
      K2_POSTGRES_SECRET_ARN: { Ref: expect.stringMatching(/^PostgresSecret/) },
    });
    expect(env('stage-batch')).not.toHaveProperty('K2_CONFIG');
    expect(env('record-failure')).not.toHaveProperty('K2_CLICKHOUSE_SECRET_ARN');
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
