import { z } from 'zod';
import { shorten } from '../errors.ts';
import { checkCycleHours } from '../hourly/check.ts';
import type { EmfRecord } from '../metrics/emf.ts';
import type { CycleStatus } from '../metrics/names.ts';
import type { PipelineDeps } from './deps.ts';
import { skipSchema } from './events.ts';
import { parseEvent } from './parse.ts';

/** A failed table's error in the cycle summary (state and notifications); the store keeps it whole. */
const ERROR_CHARS = 400;

const batchOutcomeSchema = z.object({
  rows: z.number(),
  stageMs: z.number(),
});
const tableOutcomeSchema = z.object({
  table: z.string(),
  layer: z.string(),
  status: z.enum(['succeeded', 'failed']),
  batches: z.array(batchOutcomeSchema).optional(),
  error: z.object({ Error: z.string(), Cause: z.string().optional() }).optional(),
});
export const publishInputSchema = z.object({
  cycleId: z.string(),
  cycleStartedAt: z.string(),
  pass: z.number().int().positive(),
  final: z.boolean(),
  more: z.boolean(),
  skipped: z.array(skipSchema),
  layers: z.array(z.array(tableOutcomeSchema)),
});
export type PublishInput = z.infer<typeof publishInputSchema>;
export type TableOutcome = z.infer<typeof tableOutcomeSchema>;

export type CycleSummary = {
  cycleId: string;
  pass: number;
  final: boolean;
  status: CycleStatus;
  rows: number;
  tables: Array<{
    table: string;
    status: 'succeeded' | 'failed';
    batches: number;
    rows: number;
    error?: string;
  }>;
  skipped: PublishInput['skipped'];
};

/** After each pass: per-table rows, and on the last pass the cycle's duration and status, as metrics. */
export async function publishCycle(deps: PipelineDeps, raw: unknown): Promise<CycleSummary> {
  const input = parseEvent(publishInputSchema, raw, 'PublishCycle input');
  const now = deps.clock().getTime();
  const outcomes = input.layers.flat();
  const tables: CycleSummary['tables'] = outcomes.map((o) => ({
    table: o.table,
    status: o.status,
    batches: o.batches?.length ?? 0,
    rows: (o.batches ?? []).reduce((n, b) => n + b.rows, 0),
    ...(o.error ? { error: shorten(`${o.error.Error}: ${o.error.Cause ?? ''}`, ERROR_CHARS) } : {}),
  }));
  // Tables the plan itself failed (their own metadata or data) count as failed tables of the cycle.
  for (const s of input.skipped)
    if (s.reason === 'failed')
      tables.push({
        table: s.table,
        status: 'failed',
        batches: 0,
        rows: 0,
        error: shorten(s.detail, ERROR_CHARS),
      });
  const failed = tables.filter((t) => t.status === 'failed').length;
  const status: CycleStatus = failed === 0 ? 'succeeded' : failed === tables.length ? 'failed' : 'partial';
  const rows = tables.reduce((n, t) => n + t.rows, 0);

  const records: EmfRecord[] = [];
  for (const o of outcomes) {
    if (o.status !== 'succeeded') continue;
    const tableRows = (o.batches ?? []).reduce((n, b) => n + b.rows, 0);
    const seconds = (o.batches ?? []).reduce((n, b) => n + b.stageMs, 0) / 1000;
    records.push({
      timestamp: now,
      dimensions: { Table: o.table },
      values: {
        rows: tableRows,
        tableDurationSeconds: seconds,
        ...(tableRows > 0 && seconds > 0 ? { rowsPerSecond: tableRows / seconds } : {}),
      },
      properties: { cycleId: input.cycleId },
    });
  }
  for (const layer of new Set(outcomes.map((o) => o.layer))) {
    const batches = outcomes
      .filter((o) => o.layer === layer && o.status === 'succeeded')
      .flatMap((o) => o.batches ?? []);
    const stagingSeconds = batches.reduce((n, b) => n + b.stageMs, 0) / 1000;
    if (stagingSeconds > 0)
      records.push({
        timestamp: now,
        dimensions: { Layer: layer },
        values: { stagedRows: batches.reduce((n, b) => n + b.rows, 0), stagingSeconds },
        properties: { cycleId: input.cycleId },
      });
  }
  if (input.final)
    records.push({
      timestamp: now,
      dimensions: { Status: status },
      values: {
        cycles: 1,
        cycleDurationSeconds: (now - Date.parse(input.cycleStartedAt)) / 1000,
        cycleRows: rows,
      },
      properties: { cycleId: input.cycleId },
    });
  deps.metrics(records);
  // Once per cycle: back-dated rows and changed candles below the cursor (metric, health, repair).
  if (input.final) await checkCycleHours(deps);
  return {
    cycleId: input.cycleId,
    pass: input.pass,
    final: input.final,
    status,
    rows,
    tables,
    skipped: input.skipped,
  };
}
