import '../../src/orchestration/promise-with-resolvers.ts';
import { StateMachine } from 'aws-local-stepfunctions';
import { describe, expect, it } from 'vitest';
import { ConfigError, ERROR_NAMES, RETRYABLE_ERROR_NAMES } from '../../src/errors.ts';
import {
  type AslState,
  RETRY_ERROR_NAMES,
  S3_RETRY_ERROR_NAMES,
  STATE_NAMES,
} from '../../src/orchestration/asl.ts';
import { EMR_RETRY_ERROR_NAMES } from '../../src/orchestration/emr-states.ts';
import { definition } from './fake-cycle.ts';

type Scope = { StartAt: string; States: Record<string, AslState> };

/** Every state of the definition, nested Map processors included, with the scope it lives in. */
function walk(scope: Scope, visit: (name: string, state: AslState, scope: Scope) => void): void {
  for (const [name, state] of Object.entries(scope.States)) {
    visit(name, state, scope);
    const processor = state.ItemProcessor as Scope | undefined;
    if (processor) walk(processor, visit);
  }
}

const asl = definition({ maxConcurrency: 6 });
const states = new Map<string, AslState>();
walk(asl, (name, state) => states.set(name, state));
const state = (name: string) => states.get(name) as AslState & Record<string, never>;

describe('state machine definition', () => {
  it('is valid ASL, in JSONPath, and its state names are unique across nested processors', () => {
    expect(() => new StateMachine(asl as never)).not.toThrow();
    expect(JSON.stringify(asl)).not.toMatch(/JSONata|\{%/);
    let count = 0;
    walk(asl, () => count++);
    expect(states.size).toBe(count);
    expect([...states.keys()].sort()).toEqual(Object.values(STATE_NAMES).sort());
  });

  it('only transitions to states of the same scope', () => {
    walk(asl, (name, s, scope) => {
      const targets = [
        s.Next,
        s.Default,
        ...((s.Choices as { Next: string }[] | undefined) ?? []).map((c) => c.Next),
        ...((s.Catch as { Next: string }[] | undefined) ?? []).map((c) => c.Next),
      ].filter((t): t is string => typeof t === 'string');
      for (const target of targets) expect(scope.States, `${name} -> ${target}`).toHaveProperty(target);
    });
  });

  it('runs layers one at a time, tables of a layer in parallel, batches of a table one at a time', () => {
    expect(state(STATE_NAMES.runLayers)).toMatchObject({ ItemsPath: '$.plan.layers', MaxConcurrency: 1 });
    expect(state(STATE_NAMES.runTables)).toMatchObject({ ItemsPath: '$.tables', MaxConcurrency: 6 });
    expect(state(STATE_NAMES.runBatches)).toMatchObject({ ItemsPath: '$.plan.batches', MaxConcurrency: 1 });
    expect(() => definition({ maxConcurrency: 0 })).toThrow(/maxConcurrency 0/);
  });

  it('retries only errors that can succeed on retry, 3 times with backoff', () => {
    const retried = new Set<string>();
    walk(asl, (name, s) => {
      for (const r of (s.Retry as { ErrorEquals: string[]; MaxAttempts: number; BackoffRate: number }[]) ??
        []) {
        expect(r.MaxAttempts, name).toBe(3);
        expect(r.BackoffRate, name).toBeGreaterThan(1);
        for (const e of r.ErrorEquals) retried.add(e);
      }
    });
    expect([...retried].sort()).toEqual(
      [...RETRY_ERROR_NAMES, ...S3_RETRY_ERROR_NAMES, ...EMR_RETRY_ERROR_NAMES].sort(),
    );
    for (const name of ERROR_NAMES)
      expect(retried.has(name), name).toBe((RETRYABLE_ERROR_NAMES as readonly string[]).includes(name));
    expect(retried.has('States.ALL')).toBe(false);
    expect(retried.has('States.TaskFailed')).toBe(false);
  });

  it('gives every Lambda task the retrier', () => {
    for (const name of [
      STATE_NAMES.planCycle,
      STATE_NAMES.stageBatch,
      STATE_NAMES.commitBatchLambda,
      STATE_NAMES.commitWatermark,
      STATE_NAMES.recordFailure,
      STATE_NAMES.publishCycle,
      STATE_NAMES.extendLease,
    ]) {
      expect(state(name).Resource, name).toMatch(/^arn:aws:lambda:/);
      expect(state(name).Retry, name).toHaveLength(1);
    }
  });

  it('catches any error of a table pass into RecordFailure, and nothing at the cycle level', () => {
    expect(state(STATE_NAMES.runBatches).Catch).toEqual([
      { ErrorEquals: ['States.ALL'], ResultPath: '$.error', Next: STATE_NAMES.recordFailure },
    ]);
    expect(state(STATE_NAMES.recordFailure).Parameters).toEqual({
      'table.$': '$.table.table',
      'leaseToken.$': '$.table.leaseToken',
      'cycleId.$': '$.cycleId',
      'error.$': '$.error',
    });
    expect(state(STATE_NAMES.planCycle).Catch).toBeUndefined();
    expect(state(STATE_NAMES.runLayers).Catch).toBeUndefined();
  });

  it("reads a table's batches from its plan object, so the cycle state carries references only", () => {
    expect(state(STATE_NAMES.runTables).ItemProcessor).toMatchObject({ StartAt: STATE_NAMES.loadTablePlan });
    expect(state(STATE_NAMES.loadTablePlan)).toMatchObject({
      Resource: 'arn:aws:states:::aws-sdk:s3:getObject',
      Parameters: { 'Bucket.$': '$.table.plan.Bucket', 'Key.$': '$.table.plan.Key' },
      ResultSelector: { 'batches.$': 'States.StringToJson($.Body)' },
      ResultPath: '$.plan',
      Retry: [expect.objectContaining({ ErrorEquals: [...S3_RETRY_ERROR_NAMES] })],
      // An unreadable plan fails that table alone, and its lease is released.
      Catch: [{ ErrorEquals: ['States.ALL'], ResultPath: '$.error', Next: STATE_NAMES.recordFailure }],
    });
  });

  it('collects a few numbers per batch and a shortened error per failed table', () => {
    expect(state(STATE_NAMES.batchDone).Parameters).toEqual({
      'rows.$': '$.staged.rows',
      'stageMs.$': '$.staged.durationMs',
    });
    expect(state(STATE_NAMES.tableFailed).Parameters).toMatchObject({ 'error.$': '$.failure.error' });
    expect(state(STATE_NAMES.recordFailure).Catch).toEqual([
      { ErrorEquals: ['States.ALL'], ResultPath: '$.recordError', Next: STATE_NAMES.tableFailedUnrecorded },
    ]);
    expect(JSON.stringify(state(STATE_NAMES.tableFailedUnrecorded))).not.toContain('$.error.Cause');
  });

  it('keeps the batch spec and puts stage and commit output beside it', () => {
    expect(state(STATE_NAMES.stageBatch)).toMatchObject({ InputPath: '$.batch', ResultPath: '$.staged' });
    expect(state(STATE_NAMES.commitBatchLambda)).toMatchObject({
      Parameters: { 'batch.$': '$.batch', 'staged.$': '$.staged' },
      ResultPath: '$.committed',
    });
    expect(state(STATE_NAMES.commitWatermark)).toMatchObject({ ResultPath: '$.watermark' });
    expect(state(STATE_NAMES.commitWatermark).InputPath).toBeUndefined();
  });

  it('commits emr tables with an EMR Serverless job run keyed by the batch', () => {
    expect(state(STATE_NAMES.chooseCommitter).Choices).toEqual([
      { Variable: '$.batch.committer', StringEquals: 'lambda', Next: STATE_NAMES.commitBatchLambda },
      { Variable: '$.batch.committer', StringEquals: 'emr', Next: STATE_NAMES.commitBatchEmr },
    ]);
    expect(state(STATE_NAMES.unknownCommitter)).toMatchObject({ Type: 'Fail', Error: 'ConfigError' });
    expect(state(STATE_NAMES.commitBatchEmr)).toMatchObject({
      Resource: 'arn:aws:states:::emr-serverless:startJobRun',
      Parameters: {
        ApplicationId: '00fabcdef',
        ExecutionRoleArn: 'arn:aws:iam::123456789012:role/k2-offload-emr',
        'ClientToken.$': "States.Format('{}-{}', $.batch.batchId, $.batch.leaseToken)",
        ExecutionTimeoutMinutes: 10,
        JobDriver: {
          SparkSubmit: {
            EntryPoint: 's3://warehouse/jobs/commit_batch.py',
            'EntryPointArguments.$':
              "States.Array('--batch', States.JsonToString($.batch), '--staged', States.JsonToString($.staged))",
          },
        },
      },
      ResultSelector: { 'jobRunId.$': '$.JobRunId' },
      ResultPath: '$.emr',
      Next: STATE_NAMES.waitForEmrJob,
    });
  });

  it('extends the table lease on every poll of a running job, and goes on when the run ended', () => {
    expect(state(STATE_NAMES.waitForEmrJob)).toMatchObject({
      Type: 'Wait',
      Seconds: 30,
      Next: STATE_NAMES.extendLease,
    });
    expect(state(STATE_NAMES.extendLease)).toMatchObject({
      Parameters: { 'table.$': '$.batch.table', 'leaseToken.$': '$.batch.leaseToken' },
      ResultPath: null,
      Next: STATE_NAMES.getEmrJob,
    });
    expect(state(STATE_NAMES.getEmrJob)).toMatchObject({
      Resource: 'arn:aws:states:::aws-sdk:emrserverless:getJobRun',
      Parameters: { ApplicationId: '00fabcdef', 'JobRunId.$': '$.emr.jobRunId' },
      ResultSelector: { 'state.$': '$.JobRun.State' },
      Next: STATE_NAMES.emrJobDone,
    });
    expect(state(STATE_NAMES.emrJobDone)).toMatchObject({
      Choices: [
        { Variable: '$.emr.run.state', StringEquals: 'SUCCESS', Next: STATE_NAMES.commitWatermark },
        expect.objectContaining({ Next: STATE_NAMES.emrJobFailed }),
      ],
      Default: STATE_NAMES.waitForEmrJob,
    });
    expect(state(STATE_NAMES.emrJobFailed)).toMatchObject({ Type: 'Fail', Error: 'EmrJobFailed' });
  });

  it('refuses a job timeout that does not end inside the execution, and so inside the lease', () => {
    const emr = (executionTimeoutMinutes: number) => ({
      applicationId: 'a',
      executionRoleArn: 'r',
      entryPoint: 's3://w/j.py',
      sparkSubmitParameters: '',
      executionTimeoutMinutes,
    });
    expect(() => definition({ timeoutSeconds: 840, emr: emr(30) })).toThrow(ConfigError);
    expect(() => definition({ timeoutSeconds: 840, emr: emr(14) })).toThrow(
      /emr.jobTimeoutMinutes 14 must be below the execution timeout of 14 minutes/,
    );
    expect(() => definition({ timeoutSeconds: 840, emr: emr(13) })).not.toThrow();
  });

  it('loops back to PlanCycle while the plan says more, at most maxPasses times', () => {
    const bounded = definition({ maxPasses: 7 });
    expect((bounded.States[STATE_NAMES.checkMore] as AslState).Choices).toEqual([
      {
        And: [
          { Variable: '$.plan.more', BooleanEquals: true },
          { Variable: '$.pass', NumericLessThan: 7 },
        ],
        Next: STATE_NAMES.markContinue,
      },
    ]);
    expect(state(STATE_NAMES.nextPassInput).Next).toBe(STATE_NAMES.planCycle);
  });

  it('carries an execution timeout when given one', () => {
    expect(definition({ timeoutSeconds: 840 }).TimeoutSeconds).toBe(840);
  });
});
