import { InputError } from '../errors.ts';
import { type DimensionName, METRICS, METRICS_NAMESPACE, type MetricKey } from './names.ts';

/**
 * CloudWatch Embedded Metric Format: a Lambda publishes metrics by printing one JSON line per record,
 * which CloudWatch Logs turns into metrics. No API call on the hot path, nothing to retry or throttle.
 * https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html
 */
export type EmfRecord = {
  /** Milliseconds since the epoch; injected, so a line is reproducible. */
  timestamp: number;
  /** Dimension values of this record; a metric is published under each of its dimension sets whose
   *  dimensions are all present here. */
  dimensions?: Partial<Record<DimensionName, string>>;
  values: Partial<Record<MetricKey, number>>;
  /** Extra searchable fields (cycle id, batch id...); never metrics. */
  properties?: Record<string, string | number | boolean>;
};

type Directive = {
  Namespace: string;
  Dimensions: string[][];
  Metrics: { Name: string; Unit: string }[];
};

const MAX_METRICS_PER_DIRECTIVE = 100;

export function renderEmf(record: EmfRecord): string {
  if (!Number.isSafeInteger(record.timestamp) || record.timestamp < 0)
    throw new InputError(`EMF timestamp ${record.timestamp} must be epoch milliseconds`, {
      value: record.timestamp,
    });
  const dimensions = record.dimensions ?? {};
  const root: Record<string, string | number | boolean> = {};
  for (const [name, value] of Object.entries(dimensions)) {
    if (typeof value !== 'string' || value.length === 0 || value.length > 1024)
      throw new InputError(`EMF dimension ${name}: ${JSON.stringify(value)} must be 1 to 1024 characters`, {
        dimension: name,
      });
    root[name] = value;
  }

  // Metrics with the same dimension sets share one directive.
  const directives: Directive[] = [];
  const open = new Map<string, Directive>();
  for (const [key, value] of Object.entries(record.values) as [MetricKey, number | undefined][]) {
    if (value === undefined) continue;
    const metric = METRICS[key];
    if (!metric) throw new InputError(`EMF: unknown metric ${JSON.stringify(key)}`, { metric: key });
    if (!Number.isFinite(value))
      throw new InputError(`EMF metric ${metric.name}: ${value} is not a finite number`, {
        metric: metric.name,
      });
    const sets = metric.dimensionSets
      .filter((set) => set.every((d) => d in root))
      .map((set) => [...set] as string[]);
    if (sets.length === 0)
      throw new InputError(
        `EMF metric ${metric.name} needs dimensions ${metric.dimensionSets.map((s) => `[${s.join(', ')}]`).join(' or ')}`,
        { metric: metric.name },
      );
    const signature = JSON.stringify(sets);
    let directive = open.get(signature);
    if (!directive || directive.Metrics.length >= MAX_METRICS_PER_DIRECTIVE) {
      directive = { Namespace: METRICS_NAMESPACE, Dimensions: sets, Metrics: [] };
      directives.push(directive);
      open.set(signature, directive);
    }
    directive.Metrics.push({ Name: metric.name, Unit: metric.unit });
    root[metric.name] = value;
  }

  for (const [name, value] of Object.entries(record.properties ?? {})) {
    if (name in root || name === '_aws')
      throw new InputError(`EMF property ${name} collides with a metric or dimension of the same name`, {
        property: name,
      });
    root[name] = value;
  }

  return JSON.stringify({
    _aws: { Timestamp: record.timestamp, CloudWatchMetrics: directives },
    ...root,
  });
}

/** One line per record, newline-terminated, ready for `process.stdout.write`. */
export function renderEmfLines(records: readonly EmfRecord[]): string {
  return records.map((r) => `${renderEmf(r)}\n`).join('');
}
