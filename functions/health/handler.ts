import { z } from 'zod';
import type { PipelineDeps } from '../../src/pipeline/deps.ts';
import { collectHealth, type HealthReport, healthRecords } from '../../src/pipeline/health.ts';
import { parseEvent } from '../../src/pipeline/parse.ts';

/** `{source: "schedule"}` from the 5-minute rule, `{}` when invoked by hand. */
export const healthEventSchema = z.strictObject({ source: z.enum(['schedule', 'manual']).optional() });

/**
 * Health: the same check as `k2-offload status`, published as per-table EMF metrics (lag, watermark age,
 * TTL headroom, consecutive failures) that the alarms watch. The report is the result; an unhealthy
 * pipeline is data here, not an error, so the metrics are published whatever they say.
 */
export function createHandler(deps: () => Promise<PipelineDeps>) {
  return async (event: unknown): Promise<HealthReport> => {
    parseEvent(healthEventSchema, event ?? {}, 'Health input');
    const d = await deps();
    const timestamp = d.clock().getTime();
    // Not configured yet: say what to do, and publish the state the alarms leave out of paging.
    if (d.notConfigured) {
      d.metrics([{ timestamp, values: { notConfigured: 1 } }]);
      return {
        checkedAt: new Date(timestamp).toISOString(),
        healthy: false,
        components: [],
        tables: [],
        problems: [{ severity: 'warning', table: null, code: 'not-configured', message: d.notConfigured }],
      };
    }
    const report = await collectHealth(d);
    d.metrics([...healthRecords(report), { timestamp, values: { notConfigured: 0 } }]);
    return report;
  };
}
