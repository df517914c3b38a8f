import type { ClickHouseClient } from '@clickhouse/client';
import { ident, instantLiteral, qualifiedName } from '../clickhouse/sql.ts';
import type { TableConfig } from '../config/schema.ts';
import { ancestry, type TableMetadata } from '../iceberg/metadata.ts';
import { MARKER_KEYS } from '../iceberg/table.ts';

/**
 * Rows of a table in ClickHouse whose cursor is in [from, to): what an offload of that range would
 * write to Iceberg (for re-aggregated tables, one row per group, as the stager writes them).
 */
export async function countRange(
  client: ClickHouseClient,
  table: TableConfig,
  from: string,
  to: string,
): Promise<number> {
  const c = ident(table.cursor.column, 'cursor column');
  const where = `${c} >= ${instantLiteral(from)} AND ${c} < ${instantLiteral(to)}`;
  const source = qualifiedName(table.source.database, table.source.table);
  const groups = table.reaggregate?.groupBy.map((g) => ident(g, 'column'));
  const query = groups
    ? `SELECT toString(count()) AS n FROM (SELECT 1 FROM ${source} WHERE ${where} GROUP BY ${groups.join(', ')})`
    : `SELECT toString(count()) AS n FROM ${source} WHERE ${where}`;
  const result = await client.query({ query, format: 'JSONEachRow' });
  const [row] = await result.json<{ n: string }>();
  return Number(row?.n ?? 0);
}

export type MarkerEntry = {
  snapshotId: string;
  committedAt: string;
  batchId: string;
  windowStart: string;
  windowEnd: string;
  rows: number;
};

/** Offload markers along the table's main-branch ancestry, newest first (what a rollback can return to). */
export function recentMarkers(metadata: TableMetadata, limit: number): MarkerEntry[] {
  const out: MarkerEntry[] = [];
  for (const s of ancestry(metadata)) {
    const batchId = s.summary[MARKER_KEYS.batchId];
    if (batchId === undefined) continue;
    out.push({
      snapshotId: s['snapshot-id'].toString(),
      committedAt: new Date(s['timestamp-ms']).toISOString(),
      batchId,
      windowStart: s.summary[MARKER_KEYS.windowStart] ?? '',
      windowEnd: s.summary[MARKER_KEYS.windowEnd] ?? '',
      rows: Number(s.summary[MARKER_KEYS.rows] ?? Number.NaN),
    });
    if (out.length >= limit) break;
  }
  return out;
}
