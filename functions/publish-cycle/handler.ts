import type { PipelineDeps } from '../../src/pipeline/deps.ts';
import { parseEvent } from '../../src/pipeline/parse.ts';
import { type CycleSummary, publishCycle, publishInputSchema } from '../../src/pipeline/publish-cycle.ts';

/** PublishCycle: the outcomes of a pass in; per-table and (last pass) per-cycle metrics as EMF lines. */
export function createHandler(deps: () => Promise<PipelineDeps>) {
  return async (event: unknown): Promise<CycleSummary> => {
    const input = parseEvent(publishInputSchema, event, 'PublishCycle input');
    return publishCycle(await deps(), input);
  };
}
