import { type AuditReport, auditTables, type HourAudit } from '../../audit/audit.ts';
import type { KeySample } from '../../audit/compare.ts';
import { openIcebergReader } from '../../audit/iceberg-source.ts';
import { loadConfig, selectTables } from '../../config/load.ts';
import type { Runtime } from '../../runtime/open.ts';
import { intOpt, stringOpt } from '../args.ts';
import { type Command, withRuntime } from '../context.ts';
import { formatTable } from '../output.ts';

/** Runs the audit with ClickHouse's Iceberg reader in the right session; closes what it opened. */
export async function runAudit(
  rt: Runtime,
  options: { hours: number; tables?: string[] | undefined; since?: string },
): Promise<AuditReport> {
  const reader = openIcebergReader(rt.clickhouse, rt.settings.home);
  try {
    return await auditTables(rt, { ...options, reader: reader.client, ...(rt.s3 ? { s3: rt.s3 } : {}) });
  } finally {
    await reader.close();
  }
}

const hourResult = (h: HourAudit) => (!h.ok ? 'MISMATCH' : h.skippedKeys > 0 ? 'skipped' : 'ok');

/** `symbol=BTCUSDT sequence_number=42`: a natural key as an operator searches for it. */
const keyText = (key: KeySample) =>
  Object.entries(key)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');

function sampleLines(h: HourAudit): string[] {
  const s = h.samples;
  if (!s) return [];
  const list = (label: string, keys: string[], of: number) =>
    keys.length === 0 ? [] : [`  ${label} (${keys.length} of ${of}): ${keys.join('; ')}`];
  return [
    `${h.hour}:`,
    ...list('missing from Iceberg', s.missing.map(keyText), h.missingKeys),
    ...list('extra in Iceberg', s.extra.map(keyText), h.extraKeys),
    ...list(
      'duplicated in Iceberg',
      s.duplicated.map((d) => `${keyText(d.key)} (x${d.copies})`),
      h.duplicateKeys,
    ),
  ];
}

export function renderAudit(report: AuditReport, verbose: boolean): string {
  const lines = [
    `Audit at ${report.checkedAt}: ${report.ok ? 'OK' : 'MISMATCH'}`,
    'Compared per table and hour of the cursor column, from the start of the range to the watermark',
    '(rows above it are lag, not gaps): ClickHouse rows (candles: distinct candles) against the rows',
    "ClickHouse's own Iceberg reader sees in the table's current metadata file; natural keys missing",
    'from or extra in Iceberg, and natural keys Iceberg holds more than once. Keys in a range an',
    'audited watermark set moved past on purpose are counted as skipped, not missing.',
    '',
    formatTable(
      [
        'table',
        'result',
        'from',
        'to (watermark)',
        'clickhouse',
        'iceberg',
        'missing keys',
        'extra keys',
        'dup keys',
        'skipped keys',
      ],
      report.tables.map((t) => [
        t.table,
        !t.ok ? 'MISMATCH' : t.totals.skippedKeys > 0 ? 'ok (skips)' : 'ok',
        t.compared?.from,
        t.compared?.to,
        t.totals.expectedRows,
        t.totals.icebergRows,
        t.totals.missingKeys,
        t.totals.extraKeys,
        t.totals.duplicateKeys,
        t.totals.skippedKeys,
      ]),
    ),
  ];
  for (const t of report.tables) {
    if (t.note) lines.push(`${t.table}: ${t.note}`);
    const shown = verbose ? t.hours : t.hours.filter((h) => !h.ok || h.skippedKeys > 0);
    if (shown.length > 0)
      lines.push(
        '',
        `${t.table} (${t.iceberg}), ${verbose ? 'every hour' : 'hours that differ'}:`,
        formatTable(
          [
            'hour',
            'result',
            'clickhouse',
            'iceberg',
            'missing keys',
            'extra keys',
            'dup keys',
            'source dup keys',
            'skipped keys',
          ],
          shown.map((h) => [
            h.hour,
            hourResult(h),
            h.expectedRows,
            h.icebergRows,
            `${h.missingKeys}${h.exact ? '' : ' (approx.)'}`,
            h.extraKeys,
            h.duplicateKeys,
            h.sourceDuplicateKeys,
            h.skippedKeys,
          ]),
        ),
      );
    const samples = t.hours.filter((h) => !h.ok).flatMap(sampleLines);
    if (samples.length > 0) lines.push('', `${t.table}, keys that differ (a sample):`, ...samples);
    const skips = t.skips.filter((s) => s.skippedKeys > 0);
    if (skips.length > 0)
      lines.push(
        '',
        `${t.table}, ranges skipped on purpose (audited watermark set; their rows are not in Iceberg):`,
        formatTable(
          ['from', 'to', 'skipped keys', 'by', 'reason', 'at'],
          skips.map((s) => [s.from, s.to, s.skippedKeys, s.actor, s.reason, s.at]),
        ),
      );
  }
  return lines.join('\n');
}

export const auditCommand: Command = {
  name: 'audit',
  summary: 'per-hour ClickHouse vs Iceberg counts, missing and duplicate keys; exit 1 on a mismatch',
  usage: '[--hours N] [--table NAME] [--verbose] [--config PATH] [--json]',
  description: [
    'For each table (or --table), for the last N hours of its cursor column up to its watermark:',
    'rows ClickHouse holds (candles: distinct candles, as offloaded) against rows in Iceberg, read by',
    "ClickHouse's own Iceberg reader (chDB icebergLocal / icebergS3) on the table's current metadata",
    'file, not by our writer; natural keys missing from or extra in Iceberg, and duplicate keys.',
    'Hours above the watermark are lag and are not compared; hours past the hot-tier TTL neither.',
    'Read-only. Exit code 1 on any mismatch.',
  ].join('\n'),
  options: {
    hours: { type: 'string', value: 'N', description: 'how many hours back to compare (default 24)' },
    table: { type: 'string', value: 'NAME', description: 'only this table' },
    verbose: { type: 'boolean', description: 'print every hour, not only those that differ' },
  },
  async run(args, ctx) {
    const hours = intOpt(args, 'hours', 24, 1, 24 * 3650);
    const table = stringOpt(args, 'table');
    const tables = table ? [table] : undefined;
    if (tables) selectTables(await loadConfig(ctx.configPath), tables);
    const report = await withRuntime(ctx, (rt) => runAudit(rt, { hours, tables }));
    ctx.emit(report);
    ctx.say(renderAudit(report, args.values.verbose === true));
    return report.ok ? 0 : 1;
  },
};
