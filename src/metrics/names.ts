/**
 * Every metric the offload publishes: one list, read by the emitters (EMF log lines), the alarms and the
 * dashboard, so a renamed metric cannot leave an alarm watching a series nobody writes (the old system's
 * lag and cycle alerts watched names that had no series).
 *
 * Per-table metrics are published twice: with the `Table` dimension (dashboard lines per table) and with
 * no dimension at all (one series across tables, which the alarms watch with Maximum/Minimum/Sum).
 */
export const METRICS_NAMESPACE = 'K2/Offload';

export const DIMENSIONS = {
  table: 'Table',
  errorType: 'ErrorType',
  status: 'Status',
} as const;
export type DimensionName = (typeof DIMENSIONS)[keyof typeof DIMENSIONS];

/** CloudWatch's unit names (a subset). Minutes and hours have no CloudWatch unit: they go as `None`. */
export const UNITS = {
  count: 'Count',
  seconds: 'Seconds',
  milliseconds: 'Milliseconds',
  countPerSecond: 'Count/Second',
  percent: 'Percent',
  none: 'None',
} as const;
export type MetricUnit = (typeof UNITS)[keyof typeof UNITS];

export type MetricDefinition = {
  readonly name: string;
  readonly unit: MetricUnit;
  /** Dimension sets the emitter publishes; `[]` is the across-tables series the alarms read. */
  readonly dimensionSets: readonly (readonly DimensionName[])[];
  /** Which statistic the alarms and the dashboard read. */
  readonly statistic: 'Maximum' | 'Minimum' | 'Sum' | 'Average';
  readonly description: string;
};

const perTable = [[DIMENSIONS.table], []] as const;

export const METRICS = {
  // Per table, emitted by the health function every 5 minutes.
  lagMinutes: {
    name: 'LagMinutes',
    unit: UNITS.none,
    dimensionSets: perTable,
    statistic: 'Maximum',
    description:
      'Minutes from the table watermark to the newest cursor value a cycle could offload now (now - lateness, and for candle tables the start of the newest closed bucket, capped by upstream watermarks): about one schedule period when healthy, for every table.',
  },
  watermarkAgeSeconds: {
    name: 'WatermarkAgeSeconds',
    unit: UNITS.seconds,
    dimensionSets: perTable,
    statistic: 'Maximum',
    description:
      'Seconds since the table last completed a pass successfully (a commit, or a check that found nothing to do).',
  },
  ttlHeadroomHours: {
    name: 'TtlHeadroomHours',
    unit: UNITS.none,
    dimensionSets: perTable,
    statistic: 'Minimum',
    description:
      'Hours until the oldest row not yet in Iceberg is deleted by the hot tier TTL (the TTL itself when none is waiting).',
  },
  consecutiveFailures: {
    name: 'ConsecutiveFailures',
    unit: UNITS.count,
    dimensionSets: perTable,
    statistic: 'Maximum',
    description: 'Failed passes of the table in a row since its last success (from its watermark row).',
  },
  icebergBehind: {
    name: 'IcebergBehind',
    unit: UNITS.count,
    dimensionSets: perTable,
    statistic: 'Maximum',
    description:
      "1 when Iceberg lacks batches the table's watermark has passed (the catalog points at older metadata, or another catalog has no table): the table is stopped until repaired; 0 otherwise.",
  },
  // Per table, emitted when a cycle publishes its outcome.
  rows: {
    name: 'RowsOffloaded',
    unit: UNITS.count,
    dimensionSets: perTable,
    statistic: 'Sum',
    description: 'Rows committed to Iceberg (already-committed batches count 0).',
  },
  tableDurationSeconds: {
    name: 'TableDurationSeconds',
    unit: UNITS.seconds,
    dimensionSets: perTable,
    statistic: 'Maximum',
    description: 'Wall time of the table in one cycle pass: stage, commit and watermark of all its batches.',
  },
  rowsPerSecond: {
    name: 'RowsPerSecond',
    unit: UNITS.countPerSecond,
    dimensionSets: perTable,
    statistic: 'Average',
    description: 'Rows committed per second of table wall time; only emitted when rows were committed.',
  },
  // Per table, emitted by each cycle's per-hour check (src/hourly/check.ts).
  hourlyMismatchHours: {
    name: 'HourlyMismatchHours',
    unit: UNITS.count,
    dimensionSets: perTable,
    statistic: 'Maximum',
    description:
      'Closed hours of the cursor (within the look-back, default 48 h) where ClickHouse holds other rows, or for candles other values, than the batches committed for that hour: back-dated rows or candles changed after their lateness. 0 when all agree; `k2-offload repair` fixes them.',
  },
  // Per table and error name, emitted by the failure step.
  errors: {
    name: 'Errors',
    unit: UNITS.count,
    dimensionSets: [[DIMENSIONS.table, DIMENSIONS.errorType], [DIMENSIONS.errorType], []],
    statistic: 'Sum',
    description: 'Failed table passes, by the error name Step Functions caught.',
  },
  // Per cycle.
  cyclesStarted: {
    name: 'CyclesStarted',
    unit: UNITS.count,
    dimensionSets: [[]],
    statistic: 'Sum',
    description: 'Cycles whose first pass was planned (loop-back passes of one cycle do not count).',
  },
  cycles: {
    name: 'Cycles',
    unit: UNITS.count,
    dimensionSets: [[DIMENSIONS.status], []],
    statistic: 'Sum',
    description: 'Cycles finished, by status: succeeded (every table ok), partial (some failed), failed.',
  },
  cycleDurationSeconds: {
    name: 'CycleDurationSeconds',
    unit: UNITS.seconds,
    dimensionSets: [[]],
    statistic: 'Maximum',
    description: 'Wall time from the first plan of a cycle to its publish step, loop-back passes included.',
  },
  cycleRows: {
    name: 'CycleRows',
    unit: UNITS.count,
    dimensionSets: [[]],
    statistic: 'Sum',
    description: 'Rows committed by a cycle across all tables.',
  },
} as const satisfies Record<string, MetricDefinition>;

export type MetricKey = keyof typeof METRICS;

export const CYCLE_STATUSES = ['succeeded', 'partial', 'failed'] as const;
export type CycleStatus = (typeof CYCLE_STATUSES)[number];

/**
 * Alarm names of the old system, kept because on-call searches for them; the semantics are ours
 * (alarms that can fire: every one watches a metric above).
 */
export const ALARM_NAMES = {
  lagCritical: 'IcebergOffloadLagCritical',
  lagElevated: 'IcebergOffloadLagElevated',
  cycleTooSlow: 'IcebergOffloadCycleTooSlow',
  cycleSlow: 'IcebergOffloadCycleSlow',
  consecutiveFailures: 'IcebergOffloadConsecutiveFailures',
  watermarkStale: 'IcebergOffloadWatermarkStale',
  schedulerDown: 'IcebergOffloadSchedulerDown',
  ttlHeadroomLow: 'IcebergOffloadTtlHeadroomLow',
  successRateLow: 'IcebergOffloadSuccessRateLow',
  throughputLow: 'IcebergOffloadThroughputLow',
  executionsFailing: 'IcebergOffloadExecutionsFailing',
  icebergBehind: 'IcebergOffloadIcebergBehind',
  hourlyMismatch: 'IcebergOffloadHourlyMismatch',
  incident: 'IcebergOffloadIncident',
} as const;
export type AlarmKey = keyof typeof ALARM_NAMES;
