import type { ClickHouseClient } from '@clickhouse/client';
import { ident, instantLiteral } from '../clickhouse/sql.ts';
import type { TableConfig } from '../config/schema.ts';
import { checksValues, rowHashSql, stagedText } from '../hourly/sql.ts';

/**
 * Per-hour fingerprints of one side (ClickHouse or Iceberg) of a table: rows, distinct natural keys,
 * keys seen more than once, and a digest (sum of the keys' hashes). Two sides with the same keys have
 * the same key count and digest; where they differ, `diffKeys` finds how many keys each side lacks.
 */
export type HourPrint = { hour: string; rows: number; keys: number; duplicateKeys: number; digest: string };

/**
 * Key columns as text of their staging types: both readers then hash the same bytes for the same value.
 * Candles hash every column: a late trade changes a candle's values, not its key, and the cold tier
 * must hold the final values (a changed candle shows as one key missing and one extra).
 */
function keyHash(table: TableConfig): string {
  if (checksValues(table)) return rowHashSql(table);
  return `cityHash64(${table.naturalKey.map((name) => stagedText(table, name)).join(', ')})`;
}

function keyed(table: TableConfig, from: string, since: string, until: string): string {
  const c = ident(table.cursor.column, 'cursor column');
  return `SELECT toStartOfHour(toDateTime64(${c}, 6, 'UTC')) AS hour, ${keyHash(table)} AS h
          FROM ${from} WHERE ${c} >= ${instantLiteral(since)} AND ${c} < ${instantLiteral(until)}`;
}

async function rowsOf<T>(client: ClickHouseClient, query: string): Promise<T[]> {
  const result = await client.query({ query, format: 'JSONEachRow' });
  return result.json<T>();
}

export async function hourPrints(
  client: ClickHouseClient,
  table: TableConfig,
  from: string,
  since: string,
  until: string,
): Promise<HourPrint[]> {
  const rows = await rowsOf<Record<string, string>>(
    client,
    `SELECT formatDateTime(hour, '%Y-%m-%dT%H:00:00Z', 'UTC') AS hour, toString(sum(n)) AS rows,
            toString(count()) AS keys, toString(countIf(n > 1)) AS dups, toString(sum(h)) AS digest
     FROM (SELECT hour, h, count() AS n FROM (${keyed(table, from, since, until)}) GROUP BY hour, h)
     GROUP BY hour ORDER BY hour`,
  );
  return rows.map((r) => ({
    hour: r.hour as string,
    rows: Number(r.rows),
    keys: Number(r.keys),
    duplicateKeys: Number(r.dups),
    digest: r.digest as string,
  }));
}

const BUCKETS = 1024;
const MAX_BUCKETS_FETCHED = 64;

/**
 * Keys of one hour present on one side only. Narrows with per-bucket digests first, then fetches the
 * hashes of differing buckets only, so memory stays small however big the hour. `exact` is false when
 * too many buckets differ to fetch them all (then the counts are the key-count difference). `within`
 * clips the hour to the compared range: rows past the watermark are lag, not missing keys.
 */
export async function diffKeys(
  a: { client: ClickHouseClient; from: string },
  b: { client: ClickHouseClient; from: string },
  table: TableConfig,
  hour: string,
  within?: { since: string; until: string },
): Promise<{ onlyInA: number; onlyInB: number; exact: boolean }> {
  const hourEnd = Date.parse(hour) + 3_600_000;
  const start = new Date(Math.max(Date.parse(hour), Date.parse(within?.since ?? hour))).toISOString();
  const end = new Date(Math.min(hourEnd, within ? Date.parse(within.until) : hourEnd)).toISOString();
  const buckets = async (side: typeof a) =>
    new Map(
      (
        await rowsOf<{ b: string; k: string; d: string }>(
          side.client,
          `SELECT toString(h % ${BUCKETS}) AS b, toString(uniqExact(h)) AS k, toString(sumDistinct(h)) AS d
           FROM (${keyed(table, side.from, start, end)}) GROUP BY b`,
        )
      ).map((r) => [r.b, `${r.k}/${r.d}`]),
    );
  const [ba, bb] = await Promise.all([buckets(a), buckets(b)]);
  const differing = [...new Set([...ba.keys(), ...bb.keys()])].filter((k) => ba.get(k) !== bb.get(k));
  if (differing.length > MAX_BUCKETS_FETCHED) {
    const count = (m: Map<string, string>) =>
      [...m.values()].reduce((n, v) => n + Number(v.split('/')[0]), 0);
    const d = count(ba) - count(bb);
    return { onlyInA: Math.max(0, d), onlyInB: Math.max(0, -d), exact: false };
  }
  if (differing.length === 0) return { onlyInA: 0, onlyInB: 0, exact: true };
  const hashes = async (side: typeof a) =>
    new Set(
      (
        await rowsOf<{ key: string }>(
          side.client,
          `SELECT DISTINCT toString(h) AS key FROM (${keyed(table, side.from, start, end)})
           WHERE h % ${BUCKETS} IN (${differing.join(', ')})`,
        )
      ).map((r) => r.key),
    );
  const [ha, hb] = await Promise.all([hashes(a), hashes(b)]);
  return {
    onlyInA: [...ha].filter((h) => !hb.has(h)).length,
    onlyInB: [...hb].filter((h) => !ha.has(h)).length,
    exact: true,
  };
}
