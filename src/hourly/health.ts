import type { TableConfig } from '../config/schema.ts';
import type { PipelineDeps } from '../pipeline/deps.ts';
import type { Problem } from '../pipeline/health.ts';
import type { HourMismatch } from '../watermark/hourly-types.ts';

const describe = (m: HourMismatch) =>
  m.clickhouseRows !== m.committedRows
    ? `${m.hour.slice(0, 13)}h ClickHouse ${m.clickhouseRows} rows, committed ${m.committedRows}`
    : `${m.hour.slice(0, 13)}h values differ (${m.clickhouseRows} rows)`;

/**
 * Health's view of the last per-hour check: critical while any checked hour disagrees, since rows
 * ClickHouse holds below the cursor are never offloaded by a cycle. Read from the store: no query here.
 */
export async function hourlyProblems(deps: PipelineDeps, table: TableConfig): Promise<Problem[]> {
  const check = await deps.watermarks.lastCheck(table.name);
  if (!check || check.mismatches.length === 0) return [];
  const shown = check.mismatches.slice(0, 3).map(describe).join('; ');
  const more = check.mismatches.length > 3 ? `; and ${check.mismatches.length - 3} more` : '';
  return [
    {
      severity: 'critical',
      table: table.name,
      code: 'hourly-mismatch',
      message: `${check.mismatches.length} closed hour(s) differ from what was committed (${shown}${more}), checked ${check.checkedAt}: back-dated rows or late trades; run k2-offload repair --table ${table.name}`,
    },
  ];
}
