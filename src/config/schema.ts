import { z } from 'zod';

/** Names we splice into SQL and object keys: plain identifiers only, so nothing in config can inject. */
export const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;
export const identifier = z
  .string()
  .regex(
    IDENTIFIER,
    'must be an identifier: a letter or _, then letters, digits or _, at most 63 characters',
  );

export const LAYERS = ['bronze', 'silver', 'gold'] as const;
export type Layer = (typeof LAYERS)[number];

/**
 * A ClickHouse column type, as ClickHouse prints it (`Decimal(18, 8)`, `Nullable(UInt64)`,
 * `Map(String, String)`...). Parsed and mapped to Iceberg by `types.ts`, which refuses what it cannot map.
 */
const columnSchema = z.strictObject({
  name: identifier,
  type: z.string().min(1),
  /** Optional explicit Iceberg type, e.g. `string` for a UUID read by engines without uuid support. */
  iceberg: z.string().min(1).optional(),
  /** Required columns map to Iceberg `required` fields; ClickHouse `Nullable(...)` is always optional. */
  required: z.boolean().default(false),
  /** The column's previous name, after a rename in ClickHouse: the Iceberg column keeps its field id. */
  renamedFrom: identifier.optional(),
});

const cursorSchema = z.discriminatedUnion('kind', [
  /** A column ClickHouse sets at insert time: rows only ever arrive at or after the newest value. */
  z.strictObject({ kind: z.literal('ingestion_time'), column: identifier }),
  /** A bucket start (candles): only buckets with `start + interval <= bound` are closed and offloaded. */
  z.strictObject({
    kind: z.literal('closed_bucket'),
    column: identifier,
    intervalSeconds: z.number().int().positive(),
  }),
]);

export const PARTITION_TRANSFORM =
  /^(identity|year|month|day|hour|void|bucket\[[1-9][0-9]*\]|truncate\[[1-9][0-9]*\])$/;
const partitionFieldSchema = z.strictObject({
  column: identifier,
  transform: z
    .string()
    .regex(PARTITION_TRANSFORM, 'must be identity, year, month, day, hour, bucket[N] or truncate[N]'),
});

/** SQL aggregate expression over source columns; checked against a small allow-list of functions. */
const aggregateSchema = z.strictObject({
  groupBy: z.array(identifier).min(1),
  /** Output column -> aggregate, e.g. `argMin(open_price, open_time)`, `sum(volume)`. */
  columns: z.record(identifier, z.string().min(1)),
});

export const tableConfigSchema = z.strictObject({
  /** Logical name: the watermark key and the name used on the CLI. */
  name: identifier,
  layer: z.enum(LAYERS),
  source: z.strictObject({ database: identifier, table: identifier }),
  target: z.strictObject({ namespace: identifier, name: identifier }),
  dependsOn: z.array(identifier).default([]),
  cursor: cursorSchema,
  latenessSeconds: z.number().int().nonnegative().default(300),
  maxWindowSeconds: z.number().int().positive().default(3600),
  maxRowsPerBatch: z.number().int().positive().default(5_000_000),
  /** Hot-tier TTL, to report how close the oldest un-offloaded row is to deletion. */
  ttlSeconds: z.number().int().positive(),
  /** The column the hot tier's TTL runs on (bronze: exchange_timestamp); default the cursor column. */
  ttlColumn: identifier.optional(),
  /**
   * Closed hours below the cursor that each cycle compares with what was committed for them (back-dated
   * rows, candles changed after their lateness); 0 turns the check off.
   */
  hourlyCheckHours: z
    .number()
    .int()
    .nonnegative()
    .max(24 * 90)
    .default(48),
  columns: z.array(columnSchema).min(1),
  naturalKey: z.array(identifier).min(1),
  partitionSpec: z.array(partitionFieldSchema).default([]),
  /** Columns removed from the Iceberg table's current schema (they stay in its history and old files). */
  droppedColumns: z.array(identifier).default([]),
  reaggregate: aggregateSchema.optional(),
  /** Where the Iceberg commit runs in AWS: our TypeScript committer in a Lambda, or Spark on EMR Serverless. */
  committer: z.enum(['lambda', 'emr']).default('lambda'),
  /** First cursor value to offload from when the table has no watermark yet (ISO 8601). */
  initialCursor: z.iso.datetime({ offset: true }).default('1970-01-01T00:00:00Z'),
});

export const offloadConfigSchema = z.strictObject({
  tables: z.array(tableConfigSchema).min(1),
});

export type ColumnConfig = z.infer<typeof columnSchema>;
export type CursorConfig = z.infer<typeof cursorSchema>;
export type PartitionFieldConfig = z.infer<typeof partitionFieldSchema>;
export type TableConfig = z.infer<typeof tableConfigSchema>;
export type TableConfigInput = z.input<typeof tableConfigSchema>;
export type OffloadConfig = z.infer<typeof offloadConfigSchema>;
