import { ConfigError } from '../errors.ts';
import {
  type AslState,
  DEFAULT_EMR_POLL_SECONDS,
  DEFAULT_EMR_TIMEOUT_MINUTES,
  type EmrOptions,
  type Retrier,
  STATE_NAMES as S,
} from './asl.ts';

/** Transient errors of the EMR Serverless API through the SDK integration (ServiceName.ErrorName). */
export const EMR_RETRY_ERROR_NAMES = [
  'EmrServerless.InternalServerException',
  'EmrServerless.ThrottlingException',
] as const;

/**
 * The Spark commit of one batch: start the job run, then until it ends, every `pollSeconds`, extend the
 * table's lease (the heartbeat: a job must not outlive the lease its table holds, or another cycle
 * could start a second job of the batch) and look at the run's state. Polled rather than `.sync`, so
 * the heartbeat runs beside the job without a Parallel branch that cannot tell when the job ended.
 *
 * The job's own timeout is checked against the execution timeout: the lease lasts a minute longer
 * than the execution, so a job that ends inside the execution ends inside the lease even when the
 * heartbeat stops with the execution.
 */
export function emrCommitStates(
  emr: EmrOptions,
  options: {
    extendLease: AslState;
    retrier: (errors: readonly string[]) => Retrier;
    onSuccess: string;
    executionTimeoutSeconds?: number;
  },
): Record<string, AslState> {
  const timeoutMinutes = emr.executionTimeoutMinutes ?? DEFAULT_EMR_TIMEOUT_MINUTES;
  const pollSeconds = emr.pollSeconds ?? DEFAULT_EMR_POLL_SECONDS;
  const limit = options.executionTimeoutSeconds;
  if (limit !== undefined && timeoutMinutes * 60 >= limit)
    throw new ConfigError(
      `emr.jobTimeoutMinutes ${timeoutMinutes} must be below the execution timeout of ${limit / 60} minutes: a Spark job must end inside the cycle and the lease of its table; lower emr.jobTimeoutMinutes`,
      { field: 'emr.jobTimeoutMinutes', value: timeoutMinutes },
    );
  if (!Number.isInteger(pollSeconds) || pollSeconds < 1 || (limit !== undefined && pollSeconds * 4 > limit))
    throw new RangeError(
      `emr pollSeconds ${pollSeconds} must be a whole number of seconds, well inside the execution timeout`,
    );
  const emrRetry = options.retrier(EMR_RETRY_ERROR_NAMES);
  return {
    [S.commitBatchEmr]: {
      Type: 'Task',
      Resource: 'arn:aws:states:::emr-serverless:startJobRun',
      Parameters: {
        ApplicationId: emr.applicationId,
        ExecutionRoleArn: emr.executionRoleArn,
        'Name.$': "States.Format('k2-offload-{}-{}', $.batch.table, $.batch.batchId)",
        // Deterministic from the plan: a retry within this lease attaches to the same job run, while the
        // next cycle (new lease) can start afresh after a failed run. The data identity is the batch id
        // marker in Iceberg, which the job checks and commits as one compare-and-set.
        'ClientToken.$': "States.Format('{}-{}', $.batch.batchId, $.batch.leaseToken)",
        ExecutionTimeoutMinutes: timeoutMinutes,
        JobDriver: {
          SparkSubmit: {
            EntryPoint: emr.entryPoint,
            // The files StageBatch wrote (one attempt's folder): the job commits exactly these.
            'EntryPointArguments.$':
              "States.Array('--batch', States.JsonToString($.batch), '--staged', States.JsonToString($.staged))",
            SparkSubmitParameters: emr.sparkSubmitParameters,
          },
        },
        ...(emr.logUri
          ? {
              ConfigurationOverrides: {
                MonitoringConfiguration: { S3MonitoringConfiguration: { LogUri: emr.logUri } },
              },
            }
          : {}),
      },
      Retry: [emrRetry],
      ResultSelector: { 'jobRunId.$': '$.JobRunId' },
      ResultPath: '$.emr',
      Next: S.waitForEmrJob,
    },
    [S.waitForEmrJob]: { Type: 'Wait', Seconds: pollSeconds, Next: S.extendLease },
    [S.extendLease]: {
      ...options.extendLease,
      Parameters: { 'table.$': '$.batch.table', 'leaseToken.$': '$.batch.leaseToken' },
      ResultPath: null,
      Next: S.getEmrJob,
    },
    [S.getEmrJob]: {
      Type: 'Task',
      Resource: 'arn:aws:states:::aws-sdk:emrserverless:getJobRun',
      Parameters: { ApplicationId: emr.applicationId, 'JobRunId.$': '$.emr.jobRunId' },
      Retry: [emrRetry],
      ResultSelector: { 'state.$': '$.JobRun.State' },
      ResultPath: '$.emr.run',
      Next: S.emrJobDone,
    },
    [S.emrJobDone]: {
      Type: 'Choice',
      Choices: [
        // CommitWatermark verifies the marker itself: the job's own output is not needed.
        { Variable: '$.emr.run.state', StringEquals: 'SUCCESS', Next: options.onSuccess },
        {
          Or: [
            { Variable: '$.emr.run.state', StringEquals: 'FAILED' },
            { Variable: '$.emr.run.state', StringEquals: 'CANCELLED' },
          ],
          Next: S.emrJobFailed,
        },
      ],
      Default: S.waitForEmrJob,
    },
    [S.emrJobFailed]: {
      Type: 'Fail',
      Error: 'EmrJobFailed',
      Cause:
        'the Spark commit job ended FAILED or CANCELLED (GetEmrJob in the execution history has its state details; job logs under logs/emr/ in the warehouse bucket); nothing was committed unless the marker says so, the next cycle retries the batch',
    },
  };
}
