import type { PipelineDeps } from '../../src/pipeline/deps.ts';
import type { CycleHandoff } from '../../src/pipeline/events.ts';
import { notConfiguredPlan, parseCycleInput } from '../../src/pipeline/plan-cycle.ts';
import { handOffPlan, planCycleStep } from '../../src/pipeline/plan-handoff.ts';

/**
 * PlanCycle: the execution input (`{}` from the schedule, `{tables?, until?}` from a console rerun) in,
 * the cycle plan out: each table's batches in the warehouse bucket, references in the state. A malformed
 * input fails here, before a connection is opened; an unknown table or a future `until` fails in the
 * planner before anything is written. Errors keep their `name`. A stage not configured yet plans nothing
 * and says so (no failure, nothing pages).
 */
export function createHandler(deps: () => Promise<PipelineDeps>) {
  return async (event: unknown): Promise<CycleHandoff> => {
    const input = parseCycleInput(event);
    const d = await deps();
    if (d.notConfigured) return handOffPlan(d, notConfiguredPlan(d, input, d.notConfigured));
    return planCycleStep(d, input);
  };
}
