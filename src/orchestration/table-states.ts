import {
  type AslState,
  type LambdaTask,
  type Retrier,
  STATE_NAMES as S,
  S3_RETRY_ERROR_NAMES,
} from './asl.ts';

/**
 * One table's iteration of a layer: read its batch specs from the plan object PlanCycle wrote, run its
 * batches in order, and end with a small outcome (a few numbers per batch, or a shortened error), since
 * the outcomes of every table are collected into the cycle's state.
 */
export function tableScopeStates(ctx: {
  lambda: (task: LambdaTask, fields: Record<string, unknown>) => AslState;
  retrier: (errors: readonly string[]) => Retrier;
  batchStates: Record<string, AslState>;
}): Record<string, AslState> {
  const { lambda, retrier, batchStates } = ctx;
  return {
    // The table's batch specs, written by PlanCycle: only this iteration holds them in its state.
    [S.loadTablePlan]: {
      Type: 'Task',
      Resource: 'arn:aws:states:::aws-sdk:s3:getObject',
      Parameters: { 'Bucket.$': '$.table.plan.Bucket', 'Key.$': '$.table.plan.Key' },
      ResultSelector: { 'batches.$': 'States.StringToJson($.Body)' },
      ResultPath: '$.plan',
      Retry: [retrier(S3_RETRY_ERROR_NAMES)],
      Catch: [{ ErrorEquals: ['States.ALL'], ResultPath: '$.error', Next: S.recordFailure }],
      Next: S.runBatches,
    },
    [S.runBatches]: {
      Type: 'Map',
      ItemsPath: '$.plan.batches',
      // Batches of a table run in cursor order: each starts where the previous watermark ended.
      MaxConcurrency: 1,
      ItemSelector: { 'batch.$': '$$.Map.Item.Value' },
      ItemProcessor: {
        ProcessorConfig: { Mode: 'INLINE' },
        StartAt: S.stageBatch,
        States: batchStates,
      },
      ResultPath: '$.batches',
      // One table failing ends that table's pass (its later batches must not run past a gap) and
      // nothing else.
      Catch: [{ ErrorEquals: ['States.ALL'], ResultPath: '$.error', Next: S.recordFailure }],
      Next: S.tableDone,
    },
    [S.tableDone]: {
      Type: 'Pass',
      Parameters: {
        'table.$': '$.table.table',
        'layer.$': '$.table.layer',
        status: 'succeeded',
        'batches.$': '$.batches',
      },
      End: true,
    },
    [S.recordFailure]: lambda('recordFailure', {
      Parameters: {
        'table.$': '$.table.table',
        'leaseToken.$': '$.table.leaseToken',
        'cycleId.$': '$.cycleId',
        'error.$': '$.error',
      },
      ResultPath: '$.failure',
      // Failing to record a failure must not fail the other tables either; the lease expires by itself.
      Catch: [{ ErrorEquals: ['States.ALL'], ResultPath: '$.recordError', Next: S.tableFailedUnrecorded }],
      Next: S.tableFailed,
    }),
    // The error as RecordFailure shortened it: a caught Cause (a stack trace) can be kilobytes, and one
    // outcome per table is collected into the cycle's state.
    [S.tableFailed]: {
      Type: 'Pass',
      Parameters: {
        'table.$': '$.table.table',
        'layer.$': '$.table.layer',
        status: 'failed',
        'error.$': '$.failure.error',
      },
      End: true,
    },
    [S.tableFailedUnrecorded]: {
      Type: 'Pass',
      Parameters: {
        'table.$': '$.table.table',
        'layer.$': '$.table.layer',
        status: 'failed',
        error: {
          'Error.$': '$.error.Error',
          Cause: 'the failure could not be recorded; see the execution history',
        },
      },
      End: true,
    },
  };
}
