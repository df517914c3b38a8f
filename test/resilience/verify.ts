import type { ClickHouseClient } from '@clickhouse/client';
import { icebergTableFunction, type S3Access } from '../../src/audit/iceberg-source.ts';
import { instantLiteral, qualifiedName } from '../../src/clickhouse/sql.ts';
import type { TableConfig } from '../../src/config/schema.ts';
import { mapColumn } from '../../src/config/types.ts';
import { loadTable, newestMarker } from '../../src/iceberg/table.ts';
import type { PipelineDeps } from '../../src/pipeline/deps.ts';
import { targetOf } from '../../src/pipeline/plan-cycle.ts';

/**
 * The resilience suites' verdict on one table, read by chDB (ClickHouse's own Iceberg reader, no code
 * of our writer) from the metadata file the catalog points at:
 * - every natural key ClickHouse holds below the watermark is in Iceberg exactly once, none extra;
 * - each such row equals ClickHouse's, every column (silver's arrays and maps included; candles against
 *   ClickHouse's re-aggregated final values, not its partial rows);
 * - the watermark sits at the newest offload marker's window end, or beyond it only over empty windows.
 */
export type TableVerdict = {
  table: string;
  cursor: string;
  clickhouseRows: number;
  icebergRows: number;
  missing: string[];
  duplicated: string[];
  extra: string[];
  mismatched: string[];
  watermark: string | null;
};

const q = (name: string) => `\`${name}\``;

function keySql(table: TableConfig): string {
  return table.naturalKey
    .map((k) => {
      const type = table.columns.find((c) => c.name === k)?.type ?? '';
      // Timestamps as UTC microseconds: DateTime64(3) and Iceberg's µs print differently.
      return /DateTime/.test(type)
        ? `toString(toUnixTimestamp64Micro(toDateTime64(${q(k)}, 6, 'UTC')))`
        : `toString(${q(k)})`;
    })
    .join(", '|', ");
}

/** Every column cast to the type it is staged as, so both sides print alike. */
const rowSql = (table: TableConfig) =>
  `toString(tuple(${table.columns.map((c) => `CAST(${q(c.name)} AS ${mapColumn(c).stagingType})`).join(', ')}))`;

/** ClickHouse's rows below `until`; candles as one final row each (the hot table holds partial rows). */
function hotSql(table: TableConfig, until: string): string {
  const hot = qualifiedName(table.source.database, table.source.table);
  const below = `${q(table.cursor.column)} < ${instantLiteral(until)}`;
  if (!table.reaggregate) return `(SELECT * FROM ${hot} WHERE ${below})`;
  const { groupBy, columns } = table.reaggregate;
  const inner = Object.entries(columns).map(([out, expr]) => `${expr} AS ${q(`__agg_${out}`)}`);
  const outer = table.columns.map((c) =>
    groupBy.includes(c.name) ? q(c.name) : `${q(`__agg_${c.name}`)} AS ${q(c.name)}`,
  );
  return `(SELECT ${outer.join(', ')} FROM (SELECT ${[...groupBy.map(q), ...inner].join(', ')} FROM ${hot} WHERE ${below} GROUP BY ${groupBy.map(q).join(', ')}))`;
}

async function select<T>(client: ClickHouseClient, query: string): Promise<T[]> {
  const result = await client.query({ query, format: 'JSONEachRow' });
  return (await result.json()) as T[];
}

/** `reader` reads both tiers: the chDB session of the hot tier, which also reads Iceberg. */
export async function verifyTable(
  deps: PipelineDeps,
  table: TableConfig,
  options: { reader?: ClickHouseClient; s3?: S3Access } = {},
): Promise<TableVerdict> {
  const reader = options.reader ?? deps.clickhouse;
  const w = await deps.watermarks.get(table.name);
  const location = await deps.catalog.currentMetadataLocation(targetOf(table));
  const key = keySql(table);
  const row = rowSql(table);
  const hot = await select<{ k: string; v: string }>(
    reader,
    `SELECT concat(${key}) AS k, ${row} AS v FROM ${hotSql(table, w.cursor)}`,
  );
  const cold = location
    ? await select<{ k: string; v: string }>(
        reader,
        `SELECT concat(${key}) AS k, ${row} AS v FROM ${icebergTableFunction(location, options.s3)}`,
      )
    : [];
  const hotRows = new Map<string, string>();
  for (const r of hot) hotRows.set(r.k, r.v);
  const coldRows = new Map<string, string[]>();
  for (const r of cold) coldRows.set(r.k, [...(coldRows.get(r.k) ?? []), r.v]);
  const missing = [...hotRows.keys()].filter((k) => !coldRows.has(k));
  const duplicated = [...coldRows].filter(([, v]) => v.length > 1).map(([k]) => k);
  const extra = [...coldRows.keys()].filter((k) => !hotRows.has(k));
  const mismatched = [...coldRows]
    .filter(([k, v]) => v.length === 1 && hotRows.has(k) && hotRows.get(k) !== v[0])
    .map(([k, v]) => `${k}: clickhouse ${hotRows.get(k)} iceberg ${v[0]}`);
  if (hotRows.size !== hot.length)
    duplicated.push(`(clickhouse itself repeats ${hot.length - hotRows.size} keys)`);

  let watermark: string | null = null;
  const marker = location ? newestMarker((await loadTable(deps, targetOf(table))).metadata) : undefined;
  if (marker && Date.parse(marker.windowEnd) > Date.parse(w.cursor))
    watermark = `cursor ${w.cursor} is behind Iceberg's newest marker end ${marker.windowEnd}`;
  else {
    // Past the newest marker only empty windows may have been walked.
    const from = marker ? instantLiteral(marker.windowEnd) : `toDateTime64(0, 6, 'UTC')`;
    const [gap] = await select<{ n: string }>(
      reader,
      `SELECT toString(count()) AS n FROM ${qualifiedName(table.source.database, table.source.table)}
       WHERE ${q(table.cursor.column)} >= ${from} AND ${q(table.cursor.column)} < ${instantLiteral(w.cursor)}`,
    );
    if (Number(gap?.n) > 0)
      watermark = `cursor ${w.cursor} is past the newest marker end ${marker?.windowEnd ?? '(none)'} over ${gap?.n} rows`;
  }
  return {
    table: table.name,
    cursor: w.cursor,
    clickhouseRows: hot.length,
    icebergRows: cold.length,
    missing,
    duplicated,
    extra,
    mismatched,
    watermark,
  };
}

/** What is wrong with a verdict, in words (an empty list when the table is right). */
export function problemsOf(v: TableVerdict): string[] {
  const some = (keys: string[]) => `${keys.slice(0, 3).join('; ')}${keys.length > 3 ? '; ...' : ''}`;
  return [
    ...(v.missing.length
      ? [`${v.table}: ${v.missing.length} keys missing from Iceberg (${some(v.missing)})`]
      : []),
    ...(v.duplicated.length
      ? [`${v.table}: ${v.duplicated.length} keys duplicated (${some(v.duplicated)})`]
      : []),
    ...(v.extra.length ? [`${v.table}: ${v.extra.length} keys only in Iceberg (${some(v.extra)})`] : []),
    ...(v.mismatched.length
      ? [`${v.table}: ${v.mismatched.length} rows differ (${some(v.mismatched)})`]
      : []),
    ...(v.watermark ? [`${v.table}: ${v.watermark}`] : []),
  ];
}

/** Verdicts of all configured tables, and their problems flattened. */
export async function verifyAll(
  deps: PipelineDeps,
  options: { reader?: ClickHouseClient; s3?: S3Access } = {},
): Promise<{ verdicts: TableVerdict[]; problems: string[] }> {
  const verdicts: TableVerdict[] = [];
  for (const table of deps.config.tables) verdicts.push(await verifyTable(deps, table, options));
  return { verdicts, problems: verdicts.flatMap(problemsOf) };
}
