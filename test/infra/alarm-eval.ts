/**
 * A small CloudWatch alarm evaluator for the alarm shapes the stack synthesizes (a metric with a
 * statistic, or a metric math expression with IF/FILL and arithmetic; composite rules with ALARM, NOT,
 * AND, OR), fed with datapoints parsed from our own EMF lines. CloudWatch itself cannot run here; this
 * evaluates the template's own expression, threshold, comparison, periods and missing-data treatment.
 */
export type Datapoint = {
  namespace: string;
  name: string;
  dimensions: Record<string, string>;
  value: number;
  timestamp: number;
};

/** The datapoints CloudWatch extracts from EMF log lines: one per metric per dimension set. */
export function datapointsFromEmf(lines: string): Datapoint[] {
  return lines
    .split('\n')
    .filter((l) => l.trim().length > 0)
    .flatMap((line) => {
      const doc = JSON.parse(line) as Record<string, unknown> & {
        _aws: {
          Timestamp: number;
          CloudWatchMetrics: { Namespace: string; Dimensions: string[][]; Metrics: { Name: string }[] }[];
        };
      };
      return doc._aws.CloudWatchMetrics.flatMap((d) =>
        d.Metrics.flatMap((m) =>
          d.Dimensions.map((set) => ({
            namespace: d.Namespace,
            name: m.Name,
            dimensions: Object.fromEntries(set.map((k) => [k, String(doc[k])])),
            value: Number(doc[m.Name]),
            timestamp: doc._aws.Timestamp,
          })),
        ),
      );
    });
}

type MetricStat = {
  Metric: { Namespace: string; MetricName: string; Dimensions?: { Name: string; Value: unknown }[] };
  Stat: string;
  Period: number;
};
export type AlarmProps = {
  AlarmName: string;
  Namespace?: string;
  MetricName?: string;
  Dimensions?: { Name: string; Value: unknown }[];
  Statistic?: string;
  Period?: number;
  Metrics?: { Id: string; Expression?: string; MetricStat?: MetricStat; ReturnData?: boolean }[];
  Threshold: number;
  ComparisonOperator: string;
  EvaluationPeriods: number;
  DatapointsToAlarm?: number;
  TreatMissingData?: string;
};

/** A template value: references print as their logical id (dimension values must be written alike). */
const plain = (v: unknown): string =>
  typeof v === 'string' ? v : ((v as { Ref?: string }).Ref ?? JSON.stringify(v));

function aggregate(values: number[], statistic: string): number | undefined {
  if (values.length === 0) return undefined;
  if (statistic === 'Sum') return values.reduce((a, b) => a + b, 0);
  if (statistic === 'Maximum') return Math.max(...values);
  if (statistic === 'Minimum') return Math.min(...values);
  if (statistic === 'Average') return values.reduce((a, b) => a + b, 0) / values.length;
  if (statistic === 'SampleCount') return values.length;
  throw new Error(`statistic ${statistic} is not supported by the evaluator`);
}

function statValue(
  points: Datapoint[],
  metric: { namespace: string; name: string; dimensions: Record<string, string>; statistic: string },
  from: number,
  to: number,
): number | undefined {
  const wanted = JSON.stringify(Object.entries(metric.dimensions).sort());
  const values = points
    .filter(
      (p) =>
        p.namespace === metric.namespace &&
        p.name === metric.name &&
        JSON.stringify(Object.entries(p.dimensions).sort()) === wanted &&
        p.timestamp >= from &&
        p.timestamp < to,
    )
    .map((p) => p.value);
  return aggregate(values, metric.statistic);
}

// Metric math: numbers, ids, + - * /, comparisons, IF(c, a, b), FILL(x, v). Missing is `undefined`.
type Value = number | undefined;
function evaluateExpression(text: string, ids: Record<string, Value>): Value {
  const tokens = text.match(/\d+(\.\d+)?|[A-Za-z_][A-Za-z0-9_]*|>=|<=|==|!=|[-+*/(),<>]/g) ?? [];
  let i = 0;
  const peek = () => tokens[i];
  const take = (t?: string) => {
    const token = tokens[i++];
    if (t !== undefined && token !== t) throw new Error(`expression ${text}: expected ${t}, got ${token}`);
    return token as string;
  };
  const arith = (a: Value, op: string, b: Value): Value => {
    if (a === undefined || b === undefined) return undefined;
    if (op === '+') return a + b;
    if (op === '-') return a - b;
    if (op === '*') return a * b;
    if (op === '/') return a / b;
    if (op === '>') return a > b ? 1 : 0;
    if (op === '<') return a < b ? 1 : 0;
    if (op === '>=') return a >= b ? 1 : 0;
    if (op === '<=') return a <= b ? 1 : 0;
    if (op === '==') return a === b ? 1 : 0;
    return a !== b ? 1 : 0;
  };
  const factor = (): Value => {
    const t = take();
    if (t === '(') {
      const v = comparison();
      take(')');
      return v;
    }
    if (/^\d/.test(t)) return Number(t);
    if (peek() === '(') {
      take('(');
      const args: Value[] = [comparison()];
      while (peek() === ',') {
        take(',');
        args.push(comparison());
      }
      take(')');
      if (t === 'FILL') return args[0] ?? args[1];
      if (t === 'IF') return args[0] === undefined ? undefined : args[0] !== 0 ? args[1] : args[2];
      throw new Error(`expression ${text}: function ${t} is not supported by the evaluator`);
    }
    if (!(t in ids)) throw new Error(`expression ${text}: unknown id ${t}`);
    return ids[t];
  };
  const term = (): Value => {
    let v = factor();
    while (peek() === '*' || peek() === '/') v = arith(v, take(), factor());
    return v;
  };
  const additive = (): Value => {
    let v = term();
    while (peek() === '+' || peek() === '-') v = arith(v, take(), term());
    return v;
  };
  const comparison = (): Value => {
    const v = additive();
    const op = peek();
    if (op && ['>', '<', '>=', '<=', '==', '!='].includes(op)) return arith(v, take(), additive());
    return v;
  };
  const result = comparison();
  if (i !== tokens.length) throw new Error(`expression ${text}: unexpected ${tokens[i]}`);
  return result;
}

/** The alarm's value in the period ending at `end` (exclusive), `undefined` when there is no data. */
export function alarmValue(alarm: AlarmProps, points: Datapoint[], end: number): Value {
  const dims = (d?: { Name: string; Value: unknown }[]) =>
    Object.fromEntries((d ?? []).map((x) => [x.Name, plain(x.Value)]));
  if (alarm.MetricName) {
    const period = (alarm.Period ?? 60) * 1000;
    return statValue(
      points,
      {
        namespace: alarm.Namespace as string,
        name: alarm.MetricName,
        dimensions: dims(alarm.Dimensions),
        statistic: alarm.Statistic as string,
      },
      end - period,
      end,
    );
  }
  const metrics = alarm.Metrics ?? [];
  const ids: Record<string, Value> = {};
  for (const m of metrics)
    if (m.MetricStat) {
      const period = m.MetricStat.Period * 1000;
      ids[m.Id] = statValue(
        points,
        {
          namespace: m.MetricStat.Metric.Namespace,
          name: m.MetricStat.Metric.MetricName,
          dimensions: dims(m.MetricStat.Metric.Dimensions),
          statistic: m.MetricStat.Stat,
        },
        end - period,
        end,
      );
    }
  const returned = metrics.find((m) => m.ReturnData !== false && m.Expression);
  if (!returned?.Expression) throw new Error(`alarm ${alarm.AlarmName}: no expression returns data`);
  return evaluateExpression(returned.Expression, ids);
}

const COMPARE: Record<string, (v: number, t: number) => boolean> = {
  GreaterThanThreshold: (v, t) => v > t,
  GreaterThanOrEqualToThreshold: (v, t) => v >= t,
  LessThanThreshold: (v, t) => v < t,
  LessThanOrEqualToThreshold: (v, t) => v <= t,
};

/** The alarm's period in milliseconds (its metric's, or the metrics' of its expression). */
export function periodOf(alarm: AlarmProps): number {
  return (alarm.Period ?? alarm.Metrics?.find((m) => m.MetricStat)?.MetricStat?.Period ?? 60) * 1000;
}

/** ALARM or OK after evaluating the last `EvaluationPeriods` periods ending at `now`. */
export function alarmState(alarm: AlarmProps, points: Datapoint[], now: number): 'ALARM' | 'OK' {
  const compare = COMPARE[alarm.ComparisonOperator];
  if (!compare) throw new Error(`comparison ${alarm.ComparisonOperator} is not supported by the evaluator`);
  const period = periodOf(alarm);
  let breaching = 0;
  for (let k = 0; k < alarm.EvaluationPeriods; k++) {
    const value = alarmValue(alarm, points, now - k * period);
    if (value === undefined) {
      if (alarm.TreatMissingData === 'breaching') breaching++;
      continue;
    }
    if (compare(value, alarm.Threshold)) breaching++;
  }
  return breaching >= (alarm.DatapointsToAlarm ?? alarm.EvaluationPeriods) ? 'ALARM' : 'OK';
}

/** A composite rule (`ALARM("<id>")`, NOT, AND, OR, parentheses) over the states of its alarms by logical id. */
export function compositeState(rule: string, states: Record<string, 'ALARM' | 'OK'>): 'ALARM' | 'OK' {
  const tokens = rule.match(/ALARM\("[^"]+"\)|OK\("[^"]+"\)|\(|\)|AND|OR|NOT|TRUE|FALSE/g) ?? [];
  let i = 0;
  const atom = (): boolean => {
    const t = tokens[i++] as string;
    if (t === '(') {
      const v = or();
      i++;
      return v;
    }
    if (t === 'NOT') return !atom();
    if (t === 'TRUE' || t === 'FALSE') return t === 'TRUE';
    const [, kind, id] = /^(ALARM|OK)\("(.+)"\)$/.exec(t) ?? [];
    const state = states[id as string];
    if (!state) throw new Error(`composite rule names unknown alarm ${id}`);
    return state === kind;
  };
  const and = (): boolean => {
    let v = atom();
    while (tokens[i] === 'AND') {
      i++;
      const r = atom();
      v = v && r;
    }
    return v;
  };
  const or = (): boolean => {
    let v = and();
    while (tokens[i] === 'OR') {
      i++;
      const r = and();
      v = v || r;
    }
    return v;
  };
  return or() ? 'ALARM' : 'OK';
}
