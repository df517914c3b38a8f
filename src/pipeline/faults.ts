/**
 * Fault injection for the exactly-once tests: named points between the steps of the protocol where a
 * test can make the process "crash". Production code passes `NO_FAULTS`, whose `hit` does nothing.
 */
export const FAULT_POINTS = [
  'after-plan',
  'mid-stage',
  'after-stage',
  'after-data-files',
  'after-iceberg-commit',
  'lost-commit-response',
  'during-watermark',
  'after-watermark',
  'repair-before-commit',
  'repair-after-commit',
] as const;
export type FaultPoint = (typeof FAULT_POINTS)[number];

export type FaultContext = { table: string; batchId?: string };

export interface Faults {
  /** Called at each point; throws `InjectedCrash` where a test asked for one. */
  hit(point: FaultPoint, context: FaultContext): void;
}

export const NO_FAULTS: Faults = { hit: () => {} };

/** Thrown by an injected fault; its name is not retryable, so the cycle stops there like a crash. */
export class InjectedCrash extends Error {
  override readonly name = 'InjectedCrash';
  constructor(
    readonly point: FaultPoint,
    readonly context: FaultContext,
  ) {
    super(`injected crash at ${point} (${context.table}${context.batchId ? ` ${context.batchId}` : ''})`);
  }
}

/** Crashes at `point` the first `times` times it is hit (optionally only for one table). */
export function crashAt(
  point: FaultPoint,
  options: { table?: string; times?: number } = {},
): Faults & { fired: number } {
  const state = {
    fired: 0,
    hit(at: FaultPoint, context: FaultContext) {
      if (at !== point) return;
      if (options.table && context.table !== options.table) return;
      if (state.fired >= (options.times ?? 1)) return;
      state.fired++;
      throw new InjectedCrash(at, context);
    },
  };
  return state;
}
