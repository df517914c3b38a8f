import '../../src/orchestration/promise-with-resolvers.ts';
import { StateMachine } from 'aws-local-stepfunctions';
import { createHandler as commitBatch } from '../../functions/commit-batch/handler.ts';
import { createHandler as commitWatermark } from '../../functions/commit-watermark/handler.ts';
import { createHandler as extendLease } from '../../functions/extend-lease/handler.ts';
import { createHandler as health } from '../../functions/health/handler.ts';
import { createHandler as planCycle } from '../../functions/plan-cycle/handler.ts';
import { createHandler as publishCycle } from '../../functions/publish-cycle/handler.ts';
import { createHandler as recordFailure } from '../../functions/record-failure/handler.ts';
import { createHandler as stageBatch } from '../../functions/stage-batch/handler.ts';
import type { EmfRecord } from '../../src/metrics/emf.ts';
import { type AslDefinition, STATE_NAMES } from '../../src/orchestration/asl.ts';
import type { PipelineDeps } from '../../src/pipeline/deps.ts';
import {
  commitLikeEmr,
  LOCAL_WAIT_OVERRIDES,
  loadTablePlanLocally,
  localEmrJobRun,
} from '../../src/pipeline/local-runner.ts';
import type { FunctionName } from '../../src/runtime/access.ts';

type Handler = (event: unknown) => Promise<unknown>;

/** The error a Lambda invocation reports: `Error` is the thrown error's name, `Cause` the runtime's JSON. */
export class LambdaFailure extends Error {
  constructor(
    override readonly name: string,
    readonly errorMessage: string,
  ) {
    super(JSON.stringify({ errorType: name, errorMessage, trace: [] }));
  }
}

/**
 * A handler as Lambda runs it: the event and the result cross as JSON, and a thrown error becomes
 * `{errorType: error.name, errorMessage}` (what the Node.js runtime interface client sends).
 */
export function asLambda(handler: Handler): Handler {
  return async (event) => {
    try {
      return JSON.parse(JSON.stringify((await handler(JSON.parse(JSON.stringify(event)))) ?? null));
    } catch (error) {
      const e = error as Error;
      throw new LambdaFailure(e.name, e.message);
    }
  };
}

/** Deps for every function, or each function's own (its own clients and role, as deployed). */
/** `state-machine`: what Step Functions itself reads (a table's plan object), with the machine's role. */
export type Principal = FunctionName | 'emr-job' | 'state-machine';
export type DepsOf = PipelineDeps | ((fn: Principal) => PipelineDeps);
const depsFor = (deps: DepsOf, fn: Principal) => (typeof deps === 'function' ? deps(fn) : deps);

/** The eight functions' handlers, as their index.ts would wire them. */
export function handlersOver(deps: DepsOf) {
  const d = (fn: FunctionName) => async () => depsFor(deps, fn);
  return {
    planCycle: planCycle(d('plan-cycle')),
    stageBatch: stageBatch(d('stage-batch')),
    commitBatch: commitBatch(d('commit-batch')),
    commitWatermark: commitWatermark(d('commit-watermark')),
    recordFailure: recordFailure(d('record-failure')),
    publishCycle: publishCycle(d('publish-cycle')),
    health: health(d('health')),
    extendLease: extendLease(d('extend-lease')),
  };
}

export type Execution = { calls: string[]; output?: unknown; error?: LambdaFailure | Error };

/**
 * Executes an ASL definition in-process with every Lambda task bound to its function's handler (by state
 * name) and the EMR task to the local stand-in for the Spark job. Retries are immediate.
 */
export async function execute(definition: AslDefinition, deps: DepsOf, input: unknown): Promise<Execution> {
  const h = handlersOver(deps);
  const calls: string[] = [];
  const bind = (state: string, handler: Handler) => async (event: unknown) => {
    calls.push(state);
    return handler(event);
  };
  const S = STATE_NAMES;
  const handlers = {
    [S.planCycle]: bind(S.planCycle, asLambda(h.planCycle)),
    [S.loadTablePlan]: bind(
      S.loadTablePlan,
      asLambda((request) => loadTablePlanLocally(depsFor(deps, 'state-machine'), request)),
    ),
    [S.stageBatch]: bind(S.stageBatch, asLambda(h.stageBatch)),
    [S.commitBatchLambda]: bind(S.commitBatchLambda, asLambda(h.commitBatch)),
    [S.commitBatchEmr]: bind(
      S.commitBatchEmr,
      asLambda((request) => commitLikeEmr(depsFor(deps, 'emr-job'), request as never)),
    ),
    [S.extendLease]: bind(S.extendLease, asLambda(h.extendLease)),
    [S.getEmrJob]: bind(S.getEmrJob, localEmrJobRun),
    [S.commitWatermark]: bind(S.commitWatermark, asLambda(h.commitWatermark)),
    [S.recordFailure]: bind(S.recordFailure, asLambda(h.recordFailure)),
    [S.publishCycle]: bind(S.publishCycle, asLambda(h.publishCycle)),
  };
  const machine = new StateMachine(definition as never, { validationOptions: { checkArn: false } });
  const zero = Object.fromEntries(Object.values(S).map((name) => [name, 0]));
  const run = machine.run(input as never, {
    overrides: {
      taskResourceLocalHandlers: handlers as never,
      retryIntervalOverrides: zero,
      waitTimeOverrides: LOCAL_WAIT_OVERRIDES,
    },
  });
  try {
    return { calls, output: await run.result };
  } catch (error) {
    // The interpreter wraps a failed execution; the step's own error is its cause.
    const cause = (error as { cause?: unknown }).cause;
    return { calls, error: cause instanceof Error ? cause : (error as Error) };
  }
}

/** Metric records a function published, by metric key. */
export function captureMetrics() {
  const records: EmfRecord[] = [];
  return {
    records,
    sink: (batch: EmfRecord[]) => {
      records.push(...batch);
    },
    values: (key: string) =>
      records.flatMap((r) =>
        key in r.values ? [{ ...r.dimensions, value: (r.values as Record<string, number>)[key] }] : [],
      ),
  };
}
