import { UnavailableError } from '../../errors.ts';
import { collectHealth, describeHolder, type HealthReport } from '../../pipeline/health.ts';
import { type Command, withRuntime } from '../context.ts';
import { formatTable, singleLine } from '../output.ts';

const ago = (seconds: number | null) =>
  seconds === null ? 'never' : seconds < 120 ? `${seconds} s ago` : `${Math.round(seconds / 60)} min ago`;

export function renderHealth(report: HealthReport): string {
  const lines = [
    `k2-offload status at ${report.checkedAt}: ${report.healthy ? 'HEALTHY' : 'UNHEALTHY'}`,
    '',
    'Components:',
    ...report.components.map(
      (c) => `  ${c.ok ? 'ok  ' : 'DOWN'}  ${c.name.padEnd(10)}  ${c.detail} (${c.ms} ms)`,
    ),
    '',
    formatTable(
      [
        'table',
        'cursor',
        'lag min',
        'last pass',
        'status',
        'failures',
        'lease',
        'pending rows',
        'ttl headroom h',
      ],
      report.tables.map((t) => [
        t.table,
        t.cursor,
        t.lagMinutes,
        ago(t.watermarkAgeSeconds),
        t.status,
        t.consecutiveFailures,
        t.lease
          ? `${describeHolder(t.lease)} until ${t.lease.expiresAt}${t.lease.live ? '' : ' (STALE)'}`
          : null,
        t.pendingRows,
        t.ttlHeadroomHours,
      ]),
    ),
  ];
  const critical = report.problems.filter((p) => p.severity === 'critical');
  const warnings = report.problems.filter((p) => p.severity === 'warning');
  const list = (title: string, items: typeof report.problems) =>
    items.length
      ? ['', `${title}:`, ...items.map((p) => `  ${p.table ? `${p.table}: ` : ''}${singleLine(p.message)}`)]
      : [];
  lines.push(...list('Critical', critical), ...list('Warnings', warnings));
  if (report.problems.length === 0) lines.push('', 'No problems found.');
  return lines.join('\n');
}

/** A component that does not answer at all still gets a report, so scripts read one shape. */
function unreachable(error: UnavailableError, now: Date): HealthReport {
  const name = 'clickhouse' in error.details ? 'clickhouse' : 'postgres';
  return {
    checkedAt: now.toISOString(),
    healthy: false,
    components: [{ name, ok: false, ms: 0, detail: error.message }],
    tables: [],
    problems: [{ severity: 'critical', table: null, code: `${name}-down`, message: error.message }],
  };
}

export const statusCommand: Command = {
  name: 'status',
  summary: 'the 30-second health check: components, and per table lag, failures, lease, TTL headroom',
  usage: '[--config PATH] [--json]',
  description: [
    'Checks that ClickHouse, Postgres and the Iceberg catalog answer, then per table: the watermark',
    '(cursor), lag behind what could be offloaded now, last completed pass, consecutive failures and',
    'the last error, the lease, rows waiting in ClickHouse and hours until the hot-tier TTL deletes the',
    "oldest of them, and the last cycle's per-hour check (closed hours below the watermark whose rows",
    'or candle values differ from what was committed: fix with k2-offload repair).',
    'Thresholds are those of the alarms (lag 20/30 min, 3 failures, 1 h stale, 24 h TTL).',
    'Read-only. Exit code 1 when anything is critical (the same judgement the alarms make).',
  ].join('\n'),
  options: {},
  async run(_args, ctx) {
    let report: HealthReport;
    try {
      report = await withRuntime(ctx, (rt) => collectHealth(rt));
    } catch (error) {
      if (!(error instanceof UnavailableError)) throw error;
      report = unreachable(error, ctx.io.clock());
    }
    ctx.emit(report);
    ctx.say(renderHealth(report));
    return report.healthy ? 0 : 1;
  },
};
