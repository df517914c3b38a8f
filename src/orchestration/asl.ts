import { RETRYABLE_ERROR_NAMES } from '../errors.ts';
import { emrCommitStates } from './emr-states.ts';
import { tableScopeStates } from './table-states.ts';

/**
 * The offload cycle as an Amazon States Language definition (JSONPath, no JSONata): deployed by CDK and
 * executed in-process by the local runner with each Task bound to its handler by state name, so state
 * names are unique across the whole definition and part of the contract.
 *
 * State data, outer to inner (each a few hundred bytes per table, whatever the backlog: a state's input
 * and output are limited to 256 KB, so batch specs never travel in the cycle's state):
 *   cycle   { input: CycleInput, pass, plan: CycleHandoff, results: TableOutcome[][], loop: { final } }
 *   layer   { cycleId, layer, tables: TableRef[] }
 *   table   { cycleId, table: TableRef, plan: TablePlan (read from its object), batches: {rows, stageMs}[],
 *             error?, failure? }
 *   batch   { batch: BatchSpec, staged?: Staged, committed?: Committed, watermark? }
 */
export const STATE_NAMES = {
  startCycle: 'StartCycle',
  planCycle: 'PlanCycle',
  runLayers: 'RunLayers',
  runTables: 'RunTables',
  loadTablePlan: 'LoadTablePlan',
  runBatches: 'RunBatches',
  stageBatch: 'StageBatch',
  chooseCommitter: 'ChooseCommitter',
  commitBatchEmr: 'CommitBatchEmr',
  waitForEmrJob: 'WaitForEmrJob',
  extendLease: 'ExtendLease',
  getEmrJob: 'GetEmrJob',
  emrJobDone: 'EmrJobDone',
  emrJobFailed: 'EmrJobFailed',
  commitBatchLambda: 'CommitBatchLambda',
  unknownCommitter: 'UnknownCommitter',
  commitWatermark: 'CommitWatermark',
  batchDone: 'BatchDone',
  tableDone: 'TableDone',
  recordFailure: 'RecordFailure',
  tableFailed: 'TableFailed',
  tableFailedUnrecorded: 'TableFailedUnrecorded',
  checkMore: 'CheckMore',
  markContinue: 'MarkContinue',
  markFinal: 'MarkFinal',
  publishCycle: 'PublishCycle',
  loopOrFinish: 'LoopOrFinish',
  nextPass: 'NextPass',
  nextPassInput: 'NextPassInput',
  done: 'Done',
} as const;

/**
 * Table plans wait here, per cycle, until their Map iteration reads them (src/pipeline/plan-handoff.ts).
 * On S3 it is at the bucket's root, under the staging prefix the bucket's lifecycle rule expires,
 * whatever the warehouse's own prefix.
 */
export const PLAN_PREFIX = 'staging/plans/';

/** The Lambda-backed tasks, by the function that serves them (see `functions/<name>/index.ts`). */
export const LAMBDA_TASKS = {
  planCycle: STATE_NAMES.planCycle,
  stageBatch: STATE_NAMES.stageBatch,
  commitBatch: STATE_NAMES.commitBatchLambda,
  commitWatermark: STATE_NAMES.commitWatermark,
  recordFailure: STATE_NAMES.recordFailure,
  publishCycle: STATE_NAMES.publishCycle,
  extendLease: STATE_NAMES.extendLease,
} as const;
export type LambdaTask = keyof typeof LAMBDA_TASKS;

/** S3 errors of the plan read (GetObject through the SDK integration) worth retrying: throttling, 5xx, network. */
export const S3_RETRY_ERROR_NAMES = ['S3.SdkClientException', 'S3.S3Exception'] as const;

/** Errors worth retrying in place: ours that declare `retryable`, and the Lambda service's transient ones. */
export const RETRY_ERROR_NAMES = [
  ...RETRYABLE_ERROR_NAMES,
  'Lambda.ServiceException',
  'Lambda.AWSLambdaException',
  'Lambda.SdkClientException',
  'Lambda.TooManyRequestsException',
  'Lambda.ClientExecutionTimeoutException',
] as const;

export type EmrOptions = {
  applicationId: string;
  executionRoleArn: string;
  /** `s3://.../commit_batch.py` */
  entryPoint: string;
  /** Catalog and Iceberg settings for spark-submit (`--conf k=v ...`). */
  sparkSubmitParameters: string;
  /** The job run's own timeout; it must end inside the execution (and so inside its table's lease). */
  executionTimeoutMinutes?: number;
  /** How often a running job is polled and its table's lease extended (the heartbeat). */
  pollSeconds?: number;
  /** `s3://...` prefix for driver and executor logs. */
  logUri?: string;
};

export const DEFAULT_EMR_TIMEOUT_MINUTES = 10;
export const DEFAULT_EMR_POLL_SECONDS = 30;

export type StateMachineOptions = {
  /** Function ARNs (or CDK tokens); the local runner passes placeholders and overrides by state name. */
  functions: Record<LambdaTask, string>;
  /** Tables of one layer run at most this many at a time. */
  maxConcurrency: number;
  emr: EmrOptions;
  /** Upper bound on plan passes of one execution, on top of the execution timeout. */
  maxPasses?: number;
  timeoutSeconds?: number;
  /** Lambda task timeout in seconds (a hung invocation fails, and is caught, instead of stalling a table). */
  taskTimeoutSeconds?: number;
  retry?: { intervalSeconds?: number; maxAttempts?: number; backoffRate?: number; maxDelaySeconds?: number };
};

export type AslState = { Type: string; [field: string]: unknown };
export type Retrier = Record<string, unknown> & { ErrorEquals: string[] };
export type AslDefinition = {
  Comment?: string;
  StartAt: string;
  TimeoutSeconds?: number;
  States: Record<string, AslState>;
};

const S = STATE_NAMES;

export function placeholderFunctionArns(
  region = 'us-east-1',
  account = '123456789012',
): Record<LambdaTask, string> {
  const arn = (name: string) => `arn:aws:lambda:${region}:${account}:function:k2-offload-${name}`;
  return {
    planCycle: arn('plan-cycle'),
    stageBatch: arn('stage-batch'),
    commitBatch: arn('commit-batch'),
    commitWatermark: arn('commit-watermark'),
    recordFailure: arn('record-failure'),
    publishCycle: arn('publish-cycle'),
    extendLease: arn('extend-lease'),
  };
}

export function buildStateMachineDefinition(options: StateMachineOptions): AslDefinition {
  const { functions, emr } = options;
  const maxPasses = options.maxPasses ?? 20;
  if (!Number.isInteger(options.maxConcurrency) || options.maxConcurrency < 1)
    throw new RangeError(`maxConcurrency ${options.maxConcurrency} must be an integer >= 1`);
  if (!Number.isInteger(maxPasses) || maxPasses < 1)
    throw new RangeError(`maxPasses ${maxPasses} must be an integer >= 1`);

  const retrier = (errors: readonly string[]): Retrier => ({
    ErrorEquals: [...errors],
    IntervalSeconds: options.retry?.intervalSeconds ?? 2,
    MaxAttempts: options.retry?.maxAttempts ?? 3,
    BackoffRate: options.retry?.backoffRate ?? 2,
    MaxDelaySeconds: options.retry?.maxDelaySeconds ?? 30,
    JitterStrategy: 'FULL',
  });
  const retry = [retrier(RETRY_ERROR_NAMES)];
  const lambda = (task: LambdaTask, fields: Record<string, unknown>): AslState => ({
    Type: 'Task',
    Resource: functions[task],
    ...(options.taskTimeoutSeconds ? { TimeoutSeconds: options.taskTimeoutSeconds } : {}),
    Retry: retry,
    ...fields,
  });

  const batchStates: Record<string, AslState> = {
    [S.stageBatch]: lambda('stageBatch', {
      InputPath: '$.batch',
      ResultPath: '$.staged',
      Next: S.chooseCommitter,
    }),
    [S.chooseCommitter]: {
      Type: 'Choice',
      Choices: [
        { Variable: '$.batch.committer', StringEquals: 'lambda', Next: S.commitBatchLambda },
        { Variable: '$.batch.committer', StringEquals: 'emr', Next: S.commitBatchEmr },
      ],
      Default: S.unknownCommitter,
    },
    // A plan this definition does not understand is a config problem of that table, caught like any other.
    [S.unknownCommitter]: {
      Type: 'Fail',
      Error: 'ConfigError',
      Cause: 'batch committer must be "lambda" or "emr"; check the table config and redeploy',
    },
    [S.commitBatchLambda]: lambda('commitBatch', {
      Parameters: { 'batch.$': '$.batch', 'staged.$': '$.staged' },
      ResultPath: '$.committed',
      Next: S.commitWatermark,
    }),
    ...emrCommitStates(emr, {
      extendLease: lambda('extendLease', {}),
      retrier,
      onSuccess: S.commitWatermark,
      ...(options.timeoutSeconds ? { executionTimeoutSeconds: options.timeoutSeconds } : {}),
    }),
    [S.commitWatermark]: lambda('commitWatermark', { ResultPath: '$.watermark', Next: S.batchDone }),
    // What PublishCycle needs of a batch, nothing more: a table's outcomes are collected for every table.
    [S.batchDone]: {
      Type: 'Pass',
      Parameters: { 'rows.$': '$.staged.rows', 'stageMs.$': '$.staged.durationMs' },
      End: true,
    },
  };

  const tableStates = tableScopeStates({ lambda, retrier, batchStates });

  const layerStates: Record<string, AslState> = {
    [S.runTables]: {
      Type: 'Map',
      ItemsPath: '$.tables',
      MaxConcurrency: options.maxConcurrency,
      ItemSelector: { 'cycleId.$': '$.cycleId', 'table.$': '$$.Map.Item.Value' },
      ItemProcessor: { ProcessorConfig: { Mode: 'INLINE' }, StartAt: S.loadTablePlan, States: tableStates },
      End: true,
    },
  };

  return {
    Comment: 'k2 offload cycle: plan, then layers in order, tables of a layer in parallel, batches in order',
    StartAt: S.startCycle,
    ...(options.timeoutSeconds ? { TimeoutSeconds: options.timeoutSeconds } : {}),
    States: {
      [S.startCycle]: { Type: 'Pass', Parameters: { 'input.$': '$', pass: 1 }, Next: S.planCycle },
      // Validates the input itself: a malformed one fails the execution with the handler's error name.
      [S.planCycle]: lambda('planCycle', { InputPath: '$.input', ResultPath: '$.plan', Next: S.runLayers }),
      [S.runLayers]: {
        Type: 'Map',
        ItemsPath: '$.plan.layers',
        // bronze -> silver -> gold: a layer starts when the previous one is done.
        MaxConcurrency: 1,
        ItemSelector: {
          'cycleId.$': '$.plan.cycleId',
          'layer.$': '$$.Map.Item.Value.layer',
          'tables.$': '$$.Map.Item.Value.tables',
        },
        ItemProcessor: { ProcessorConfig: { Mode: 'INLINE' }, StartAt: S.runTables, States: layerStates },
        ResultPath: '$.results',
        Next: S.checkMore,
      },
      [S.checkMore]: {
        Type: 'Choice',
        Choices: [
          {
            And: [
              { Variable: '$.plan.more', BooleanEquals: true },
              { Variable: '$.pass', NumericLessThan: maxPasses },
            ],
            Next: S.markContinue,
          },
        ],
        Default: S.markFinal,
      },
      // An object, not a bare boolean: some interpreters treat `Result: false` as no Result at all.
      [S.markContinue]: {
        Type: 'Pass',
        Result: { final: false },
        ResultPath: '$.loop',
        Next: S.publishCycle,
      },
      [S.markFinal]: { Type: 'Pass', Result: { final: true }, ResultPath: '$.loop', Next: S.publishCycle },
      [S.publishCycle]: lambda('publishCycle', {
        Parameters: {
          'cycleId.$': '$.plan.cycleId',
          'cycleStartedAt.$': '$$.Execution.StartTime',
          'pass.$': '$.pass',
          'final.$': '$.loop.final',
          'more.$': '$.plan.more',
          'skipped.$': '$.plan.skipped',
          'layers.$': '$.results',
        },
        ResultPath: null,
        Next: S.loopOrFinish,
      }),
      [S.loopOrFinish]: {
        Type: 'Choice',
        Choices: [{ Variable: '$.loop.final', BooleanEquals: true, Next: S.done }],
        Default: S.nextPass,
      },
      [S.nextPass]: {
        Type: 'Pass',
        Parameters: {
          'pass.$': 'States.MathAdd($.pass, 1)',
          'input.$': '$.plan.input',
          carry: { 'cycleId.$': '$.plan.cycleId', 'cycleStartedAt.$': '$.plan.startedAt' },
        },
        Next: S.nextPassInput,
      },
      // The same tables and bound as the first pass, plus the cycle id so the planner knows it is a
      // loop-back pass of the same cycle, and the cycle's start for its time budget.
      [S.nextPassInput]: {
        Type: 'Pass',
        Parameters: { 'pass.$': '$.pass', 'input.$': 'States.JsonMerge($.input, $.carry, false)' },
        Next: S.planCycle,
      },
      [S.done]: { Type: 'Succeed' },
    },
  };
}
