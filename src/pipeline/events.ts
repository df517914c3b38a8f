import { z } from 'zod';
import { IDENTIFIER, LAYERS } from '../config/schema.ts';
import { hourCountSchema } from '../watermark/hourly-types.ts';

/**
 * The JSON that flows between the steps of a cycle, in AWS (Step Functions state input/output) and
 * locally (the same state machine executed in-process). Parsed with these schemas at every step.
 */
const instant = z.iso.datetime({ offset: true });
const tableName = z.string().regex(IDENTIFIER, 'must be a configured table name');

/** Execution input: the schedule sends `{}`; a console rerun may narrow tables or bound the windows. */
export const cycleInputSchema = z.strictObject({
  tables: z.array(tableName).min(1).optional(),
  until: instant.optional(),
  /** Set by the state machine on loop-back passes; not for operators. */
  cycleId: z.string().min(1).max(80).optional(),
  /** Set with cycleId: when the cycle's first pass planned, for the cycle's time budget. */
  cycleStartedAt: instant.optional(),
});
export type CycleInput = z.infer<typeof cycleInputSchema>;

/** Everything one batch needs, produced by PlanCycle; no later step re-derives a decision. */
export const batchSpecSchema = z.strictObject({
  cycleId: z.string().min(1),
  table: tableName,
  layer: z.enum(LAYERS),
  batchId: z.string().regex(/^[0-9a-f]{32}$/),
  windowStart: instant,
  windowEnd: instant,
  leaseToken: z.string().regex(/^[0-9]+$/),
  committer: z.enum(['lambda', 'emr']),
  target: z.strictObject({ namespace: z.string(), name: z.string() }),
  /**
   * The batch's staging folder, `<table location>/data/<batchId>/`. Each staging attempt writes into
   * `t<leaseToken>-<nonce>/` below it (never replacing a file); our committer adopts the files as data
   * files, so they live with the table and no lifecycle rule may expire them.
   */
  stagingPrefix: z.string().min(1),
  /** The table's last batch of this pass: its watermark step releases the lease. */
  lastOfTable: z.boolean(),
});
export type BatchSpec = z.infer<typeof batchSpecSchema>;

export const stagedFileSchema = z.strictObject({ uri: z.string(), bytes: z.number().int().nonnegative() });
export const stagedSchema = z.strictObject({
  rows: z.number().int().nonnegative(),
  files: z.array(stagedFileSchema),
  durationMs: z.number().nonnegative(),
  /** The window's rows per hour of the cursor (candles: with a value checksum), for the hourly ledger. */
  hours: z.array(hourCountSchema).optional(),
});
export type Staged = z.infer<typeof stagedSchema>;

export const committedSchema = z.strictObject({
  status: z.enum(['committed', 'already-committed', 'empty']),
  snapshotId: z
    .string()
    .regex(/^[0-9]+$/)
    .optional(),
  rows: z.number().int().nonnegative(),
});
export type Committed = z.infer<typeof committedSchema>;

/** One table's work in a pass: its lease and its batches in cursor order. */
export const tablePlanSchema = z.strictObject({
  table: tableName,
  layer: z.enum(LAYERS),
  leaseToken: z.string(),
  batches: z.array(batchSpecSchema),
});
export type TablePlan = z.infer<typeof tablePlanSchema>;

export const skipSchema = z.strictObject({
  table: tableName,
  /**
   * `failed`: the table's own metadata or data failed it at planning (recorded as its failure).
   * `time-budget`: the cycle ran long enough; a loop-back pass would risk the execution timeout.
   */
  reason: z.enum([
    'up-to-date',
    'waiting-for-upstream',
    'bucket-open',
    'leased',
    'not-selected',
    'failed',
    'time-budget',
  ]),
  detail: z.string(),
});
export type Skip = z.infer<typeof skipSchema>;

/** PlanCycle's output: layers in order, each with the tables to run in parallel. */
export const cyclePlanSchema = z.strictObject({
  cycleId: z.string(),
  /** When the cycle's first pass planned (by the planner's clock); loop-back passes carry it. */
  startedAt: instant,
  input: cycleInputSchema,
  layers: z.array(z.strictObject({ layer: z.enum(LAYERS), tables: z.array(tablePlanSchema) })),
  skipped: z.array(skipSchema),
  /** True when some table can move further after this pass (backlog, or upstream advancing now). */
  more: z.boolean(),
});
export type CyclePlan = z.infer<typeof cyclePlanSchema>;

/**
 * Where one table's plan waits for its Map iteration: an S3 object (`Bucket`, `Key`, as the state
 * machine's GetObject task takes them). Locally, `Bucket` is `local` and `Key` the object's whole URI.
 */
export const planRefSchema = z.strictObject({ Bucket: z.string().min(1), Key: z.string().min(1) });
export type PlanRef = z.infer<typeof planRefSchema>;

/** A table of the hand-off: what the Map and the failure step need, the batches stay in the object. */
export const tableRefSchema = z.strictObject({
  table: tableName,
  layer: z.enum(LAYERS),
  leaseToken: z.string(),
  batchCount: z.number().int().positive(),
  plan: planRefSchema,
});
export type TableRef = z.infer<typeof tableRefSchema>;

/**
 * PlanCycle's output as it travels through Step Functions state (256 KB at most): the plan with each
 * table's batches replaced by a reference to its plan object, and skip details shortened, so its size
 * grows by a few hundred bytes per table whatever the backlog.
 */
export const cycleHandoffSchema = cyclePlanSchema.extend({
  layers: z.array(z.strictObject({ layer: z.enum(LAYERS), tables: z.array(tableRefSchema) })),
});
export type CycleHandoff = z.infer<typeof cycleHandoffSchema>;

/** The heartbeat of a running Spark job: extend this table's lease, if this token still holds it. */
export const heartbeatSchema = z.strictObject({
  table: tableName,
  leaseToken: z.string().regex(/^[0-9]+$/),
});
export type Heartbeat = z.infer<typeof heartbeatSchema>;

/** What the failure step receives from a Catch: the table's plan and the error Step Functions caught. */
export const failureSchema = z.object({
  table: tableName,
  leaseToken: z.string(),
  cycleId: z.string(),
  error: z.object({ Error: z.string(), Cause: z.string().optional() }),
});
export type Failure = z.infer<typeof failureSchema>;
