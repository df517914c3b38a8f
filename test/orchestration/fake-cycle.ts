import '../../src/orchestration/promise-with-resolvers.ts';
import { StateMachine } from 'aws-local-stepfunctions';
import type { Layer } from '../../src/config/schema.ts';
import { shorten } from '../../src/errors.ts';
import { MemoryObjectStore } from '../../src/iceberg/memory-store.ts';
import {
  type AslDefinition,
  buildStateMachineDefinition,
  placeholderFunctionArns,
  STATE_NAMES,
  type StateMachineOptions,
} from '../../src/orchestration/asl.ts';
import type { BatchSpec, CycleInput, CyclePlan, PlanRef, TablePlan } from '../../src/pipeline/events.ts';
import { handOffPlan, readPlanObject } from '../../src/pipeline/plan-handoff.ts';
import { FAILURE_CAUSE_CHARS } from '../../src/pipeline/record-failure.ts';
import { batchIdOf } from '../../src/plan/batch.ts';

/**
 * A tiny world for the state machine: tables with a backlog of hour windows, a planner that hands out
 * a few batches per pass, and handlers that log what they are asked to do. Faults are injected per
 * state and table. Of the real pipeline only the plan hand-off is used (plan objects in a memory
 * store, read back by LoadTablePlan), as it shapes the state: the rest tests the orchestration alone.
 */
export type FakeTable = { name: string; layer: Layer; backlog: number; committer?: 'lambda' | 'emr' };
export type LogEntry = { seq: number; step: string; table?: string; batchId?: string; detail?: unknown };
type Handler = (input: unknown) => Promise<unknown>;

const HOUR = 3_600_000;
const T0 = Date.parse('2026-11-22T00:00:00.000Z');

export class FakeCycle {
  readonly log: LogEntry[] = [];
  readonly attempts = new Map<string, number>();
  readonly inFlight = new Map<string, number>();
  maxInFlightPerLayer = new Map<Layer, number>();
  /** Faults: state name -> table -> errors to throw on successive attempts (then succeed). */
  readonly faults = new Map<string, Map<string, Error[]>>();
  private readonly offloaded = new Map<string, number>();
  private seq = 0;
  private passes = 0;
  private lease = 100;
  /** The warehouse the plan objects are written to. */
  readonly store = new MemoryObjectStore();
  readonly warehouse = 's3://warehouse';
  /** The states a table's job runs report on successive polls (then SUCCESS). */
  readonly jobStates = new Map<string, string[]>();
  /** The planner's cycle id (PlanCycle's are about 40 characters). */
  cycleId = 'cycle-1';
  /** Called when a stage starts: tests use it to hold a table until its peers have started. */
  onStage: (table: string) => Promise<void> = async () => {};

  constructor(
    readonly tables: FakeTable[],
    readonly batchesPerPass = 2,
    readonly alwaysMore = false,
  ) {}

  entries(step: string): LogEntry[] {
    return this.log.filter((e) => e.step === step);
  }

  fail(state: string, table: string, ...errors: Error[]): void {
    const byTable = this.faults.get(state) ?? new Map<string, Error[]>();
    byTable.set(table, errors);
    this.faults.set(state, byTable);
  }

  private record(step: string, table?: string, batchId?: string, detail?: unknown): void {
    this.log.push({
      seq: this.seq++,
      step,
      ...(table ? { table } : {}),
      ...(batchId ? { batchId } : {}),
      detail,
    });
  }

  private maybeThrow(state: string, table: string, key: string): void {
    const n = (this.attempts.get(key) ?? 0) + 1;
    this.attempts.set(key, n);
    this.throwIfFaulted(state, table);
  }

  /** Throws the next fault queued for this state and table, without counting an attempt. */
  private throwIfFaulted(state: string, table: string): void {
    const queue = this.faults.get(state)?.get(table);
    const error = queue?.shift();
    if (error) {
      this.record(`${state}:throw`, table, undefined, error.name);
      throw error;
    }
  }

  /** What the planner hands out for an input, before the hand-off (the full plan). */
  plan(input: CycleInput): CyclePlan {
    this.passes++;
    const cycleId = input.cycleId ?? this.cycleId;
    const layers: CyclePlan['layers'] = [];
    let more = this.alwaysMore;
    for (const layer of ['bronze', 'silver', 'gold'] as const) {
      const tables: TablePlan[] = [];
      for (const t of this.tables.filter((x) => x.layer === layer)) {
        if (input.tables && !input.tables.includes(t.name)) continue;
        const done = this.offloaded.get(t.name) ?? 0;
        const count = Math.min(this.batchesPerPass, t.backlog - done);
        if (t.backlog - done > count) more = true;
        if (count <= 0) continue;
        const leaseToken = String(this.lease++);
        const batches: BatchSpec[] = [];
        for (let i = done; i < done + count; i++) {
          const windowStart = new Date(T0 + i * HOUR).toISOString();
          const windowEnd = new Date(T0 + (i + 1) * HOUR).toISOString();
          batches.push({
            cycleId,
            table: t.name,
            layer,
            batchId: batchIdOf(t.name, windowStart, windowEnd),
            windowStart,
            windowEnd,
            leaseToken,
            committer: t.committer ?? 'lambda',
            target: { namespace: 'cold', name: t.name },
            stagingPrefix: `s3://warehouse/cold/${t.name}/data/${batchIdOf(t.name, windowStart, windowEnd)}/`,
            lastOfTable: i === done + count - 1,
          });
        }
        tables.push({ table: t.name, layer, leaseToken, batches });
      }
      if (tables.length > 0) layers.push({ layer, tables });
    }
    return { cycleId, startedAt: new Date(T0).toISOString(), input, layers, skipped: [], more };
  }

  private track(layer: Layer, delta: number): void {
    const now = (this.inFlight.get(layer) ?? 0) + delta;
    this.inFlight.set(layer, now);
    this.maxInFlightPerLayer.set(layer, Math.max(this.maxInFlightPerLayer.get(layer) ?? 0, now));
  }

  handlers(): Record<string, Handler> {
    return {
      [STATE_NAMES.planCycle]: async (raw) => {
        const input = raw as CycleInput & { bogus?: unknown };
        this.record('plan', undefined, undefined, input);
        if ('bogus' in input) {
          const error = new Error('cycle input: unknown key "bogus"; allowed: tables, until');
          error.name = 'ConfigError';
          throw error;
        }
        return handOffPlan(this, this.plan(input));
      },
      [STATE_NAMES.loadTablePlan]: async (raw) => {
        const ref = raw as PlanRef;
        const table =
          ref.Key.split('/')
            .at(-1)
            ?.replace(/-\d+\.json$/, '') ?? '';
        this.throwIfFaulted(STATE_NAMES.loadTablePlan, table);
        return readPlanObject(this.store, ref);
      },
      [STATE_NAMES.stageBatch]: async (raw) => {
        const batch = raw as BatchSpec;
        this.maybeThrow(STATE_NAMES.stageBatch, batch.table, `stage:${batch.batchId}`);
        this.record('stage', batch.table, batch.batchId);
        this.track(batch.layer, +1);
        try {
          await this.onStage(batch.table);
          await new Promise((r) => setTimeout(r, 2));
        } finally {
          this.track(batch.layer, -1);
        }
        return {
          rows: 10,
          files: [{ uri: `${batch.stagingPrefix}part-00000.parquet`, bytes: 100 }],
          durationMs: 2,
        };
      },
      [STATE_NAMES.commitBatchLambda]: async (raw) => {
        const { batch } = raw as { batch: BatchSpec };
        this.maybeThrow(STATE_NAMES.commitBatchLambda, batch.table, `commit:${batch.batchId}`);
        this.record('commit', batch.table, batch.batchId, raw);
        return { status: 'committed', snapshotId: '1', rows: 10 };
      },
      [STATE_NAMES.commitBatchEmr]: async (raw) => {
        const request = raw as { JobDriver: { SparkSubmit: { EntryPointArguments: string[] } } };
        const batch = JSON.parse(request.JobDriver.SparkSubmit.EntryPointArguments[1] ?? '{}') as BatchSpec;
        this.record('emr', batch.table, batch.batchId, raw);
        return { ApplicationId: 'app', JobRunId: `run-${batch.batchId}`, Arn: 'arn' };
      },
      [STATE_NAMES.extendLease]: async (raw) => {
        const beat = raw as { table: string; leaseToken: string };
        this.throwIfFaulted(STATE_NAMES.extendLease, beat.table);
        this.record('heartbeat', beat.table, undefined, raw);
        return { expiresAt: '2026-11-22T00:15:00.000Z' };
      },
      [STATE_NAMES.getEmrJob]: async (raw) => {
        const { JobRunId } = raw as { JobRunId: string };
        const table = this.log.find(
          (e) => e.step === 'emr' && e.batchId && JobRunId.endsWith(e.batchId),
        )?.table;
        const state = (table && this.jobStates.get(table)?.shift()) ?? 'SUCCESS';
        this.record('poll', table, undefined, state);
        return { JobRun: { JobRunId, State: state } };
      },
      [STATE_NAMES.commitWatermark]: async (raw) => {
        const state = raw as { batch: BatchSpec };
        this.maybeThrow(STATE_NAMES.commitWatermark, state.batch.table, `wm:${state.batch.batchId}`);
        this.record('watermark', state.batch.table, state.batch.batchId, raw);
        this.offloaded.set(state.batch.table, (this.offloaded.get(state.batch.table) ?? 0) + 1);
        return { cursor: state.batch.windowEnd };
      },
      [STATE_NAMES.recordFailure]: async (raw) => {
        const failure = raw as { table: string; error: { Error: string; Cause?: string } };
        this.throwIfFaulted(STATE_NAMES.recordFailure, failure.table);
        this.record('failure', failure.table, undefined, raw);
        // As the real step: the error's message, shortened, for the table's outcome.
        const cause = failure.error.Cause ?? failure.error.Error;
        return {
          consecutiveFailures: 1,
          error: { Error: failure.error.Error, Cause: shorten(cause, FAILURE_CAUSE_CHARS) },
        };
      },
      [STATE_NAMES.publishCycle]: async (raw) => {
        this.record('publish', undefined, undefined, raw);
        return { ok: true };
      },
    };
  }

  get planCalls(): number {
    return this.passes;
  }
}

export function definition(overrides: Partial<StateMachineOptions> = {}): AslDefinition {
  return buildStateMachineDefinition({
    functions: placeholderFunctionArns(),
    maxConcurrency: 4,
    emr: {
      applicationId: '00fabcdef',
      executionRoleArn: 'arn:aws:iam::123456789012:role/k2-offload-emr',
      entryPoint: 's3://warehouse/jobs/commit_batch.py',
      sparkSubmitParameters: '--conf spark.executor.cores=1',
    },
    ...overrides,
  });
}

/** Runs the definition in-process with every task bound to the fake's handlers and no retry pauses. */
export async function execute(world: FakeCycle, input: unknown, asl = definition()): Promise<unknown> {
  const machine = new StateMachine(asl as never, { validationOptions: { checkArn: false } });
  const zero = Object.fromEntries(Object.values(STATE_NAMES).map((name) => [name, 0]));
  const run = machine.run(input as never, {
    overrides: {
      taskResourceLocalHandlers: world.handlers() as never,
      retryIntervalOverrides: zero,
      waitTimeOverrides: { [STATE_NAMES.waitForEmrJob]: 0 },
    },
  });
  return run.result;
}
