import '../orchestration/promise-with-resolvers.ts';
import type { StateMachine } from 'aws-local-stepfunctions';
import {
  type AslDefinition,
  buildStateMachineDefinition,
  placeholderFunctionArns,
  STATE_NAMES,
} from '../orchestration/asl.ts';
import { FUNCTION_ACCESS } from '../runtime/access.ts';
import { commitBatch } from './commit-batch.ts';
import { commitWatermark } from './commit-watermark.ts';
import type { PipelineDeps } from './deps.ts';
import { batchSpecSchema, planRefSchema, stagedSchema } from './events.ts';
import { extendLease } from './extend-lease.ts';
import { InjectedCrash } from './faults.ts';
import { parseEvent } from './parse.ts';
import { planCycleStep, readPlanObject, removeCyclePlans } from './plan-handoff.ts';
import { type CycleSummary, publishCycle } from './publish-cycle.ts';
import { recordFailure } from './record-failure.ts';
import { stageBatch } from './stage-batch.ts';

/**
 * The interpreter fails a task after 60 s unless the definition says otherwise; in AWS a task is bounded
 * by its Lambda's own timeout (StageBatch: 600 s). Locally every task gets the longest of those, so a
 * big window staged on a busy machine is not cut off where AWS would let it finish.
 */
const LOCAL_TASK_TIMEOUT_SECONDS = Math.max(...Object.values(FUNCTION_ACCESS).map((a) => a.timeoutSeconds));

/** The definition CDK deploys, with placeholder ARNs: locally every task is bound by state name. */
export function localDefinition(maxConcurrency = 4): AslDefinition {
  return buildStateMachineDefinition({
    functions: placeholderFunctionArns(),
    maxConcurrency,
    taskTimeoutSeconds: LOCAL_TASK_TIMEOUT_SECONDS,
    emr: {
      applicationId: 'local',
      executionRoleArn: 'arn:aws:iam::000000000000:role/local',
      entryPoint: 'file:///jobs/spark/commit_batch.py',
      sparkSubmitParameters: '',
    },
  });
}

/**
 * Where EMR is not there, its job is done by our committer: the same batch spec and the same staged
 * files (the `--staged` argument, as StageBatch returned them) the Spark job gets.
 */
export async function commitLikeEmr(
  deps: PipelineDeps,
  request: { JobDriver?: { SparkSubmit?: { EntryPointArguments?: string[] } } },
) {
  const args = request.JobDriver?.SparkSubmit?.EntryPointArguments ?? [];
  // A missing argument or one that is not JSON reaches parseEvent as is, which names it.
  const arg = (name: string) => {
    const at = args.indexOf(name);
    const text = at < 0 ? undefined : args[at + 1];
    try {
      return text === undefined ? undefined : JSON.parse(text);
    } catch {
      return text;
    }
  };
  const batch = parseEvent(batchSpecSchema, arg('--batch'), 'EMR job --batch argument');
  const staged = parseEvent(stagedSchema, arg('--staged'), 'EMR job --staged argument');
  await commitBatch(deps, { batch, staged });
  return { JobRunId: `local-${batch.batchId}` };
}

/** Locally the job ran to its end inside `commitLikeEmr`: its run is over when first polled. */
export async function localEmrJobRun() {
  return { JobRun: { State: 'SUCCESS' } };
}

/** Locally nothing waits between polls of a job run: it has already ended. */
export const LOCAL_WAIT_OVERRIDES = { [STATE_NAMES.waitForEmrJob]: 0 };

/** The LoadTablePlan task (S3 GetObject in AWS) over the deps' object store. */
export function loadTablePlanLocally(deps: PipelineDeps, request: unknown) {
  return readPlanObject(deps.store, parseEvent(planRefSchema, request, 'LoadTablePlan request'));
}

/**
 * Building the interpreter validates the whole definition (about 200 ms); a machine serves any number of
 * runs, so each distinct definition is built once per process.
 */
const machines = new Map<string, StateMachine>();
async function machineFor(definition: AslDefinition): Promise<StateMachine> {
  const key = JSON.stringify(definition);
  let machine = machines.get(key);
  if (!machine) {
    // Loaded here, not at start: the interpreter takes a noticeable part of a second to load, which
    // commands that run no cycle (status, --help) should not pay.
    const { StateMachine } = await import('aws-local-stepfunctions');
    machine = new StateMachine(definition as never, { validationOptions: { checkArn: false } });
    machines.set(key, machine);
  }
  return machine;
}

export type LocalCycleResult = { passes: CycleSummary[]; output: unknown };

/**
 * Runs one cycle by executing the deployed state machine definition in-process, each Task bound to the
 * same step function its Lambda runs. An injected crash aborts the whole execution, as a dead process
 * would: nothing after it runs, not even the failure step.
 */
export async function runCycle(
  deps: PipelineDeps,
  input: unknown = {},
  options: { definition?: AslDefinition; maxConcurrency?: number } = {},
): Promise<LocalCycleResult> {
  const machine = await machineFor(options.definition ?? localDefinition(options.maxConcurrency));
  const passes: CycleSummary[] = [];
  let crash: InjectedCrash | undefined;
  let execution: { abort: () => void } | undefined;
  let cycleId: string | undefined;
  const bind =
    <T>(step: (deps: PipelineDeps, event: never) => Promise<T>) =>
    async (event: unknown) => {
      if (crash) throw crash;
      try {
        return await step(deps, event as never);
      } catch (error) {
        if (error instanceof InjectedCrash) {
          crash = error;
          execution?.abort();
        }
        throw error;
      }
    };
  const handlers = {
    [STATE_NAMES.planCycle]: bind(async (d: PipelineDeps, event: never) => {
      const handoff = await planCycleStep(d, event);
      cycleId = handoff.cycleId;
      return handoff;
    }),
    [STATE_NAMES.loadTablePlan]: bind(loadTablePlanLocally),
    [STATE_NAMES.stageBatch]: bind(stageBatch),
    [STATE_NAMES.commitBatchLambda]: bind(commitBatch),
    [STATE_NAMES.commitBatchEmr]: bind(commitLikeEmr),
    [STATE_NAMES.extendLease]: bind(extendLease),
    [STATE_NAMES.getEmrJob]: bind(localEmrJobRun),
    [STATE_NAMES.commitWatermark]: bind(commitWatermark),
    [STATE_NAMES.recordFailure]: bind(recordFailure),
    [STATE_NAMES.publishCycle]: bind(async (d: PipelineDeps, event: never) => {
      const summary = await publishCycle(d, event);
      passes.push(summary);
      return summary;
    }),
  };
  const zero = Object.fromEntries(Object.values(STATE_NAMES).map((name) => [name, 50]));
  const run = machine.run(input as never, {
    overrides: {
      taskResourceLocalHandlers: handlers as never,
      retryIntervalOverrides: zero,
      waitTimeOverrides: LOCAL_WAIT_OVERRIDES,
    },
  });
  execution = run;
  try {
    const output = await run.result;
    return { passes, output };
  } catch (error) {
    if (crash) throw crash;
    throw unwrapExecutionError(error);
  } finally {
    // In AWS the bucket's staging lifecycle expires plan objects; a local warehouse has none.
    if (cycleId) await removeCyclePlans(deps.store, deps.warehouse, cycleId).catch(() => undefined);
  }
}

/** The interpreter wraps a failed execution; surface the step's own error (name, message) instead. */
function unwrapExecutionError(error: unknown): unknown {
  const cause = (error as { cause?: unknown } | null)?.cause;
  return cause instanceof Error ? cause : error;
}
