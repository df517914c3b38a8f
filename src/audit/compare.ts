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

function inRange(table: TableConfig, since: string, until: string): string {
  const c = ident(table.cursor.column, 'cursor column');
  return `${c} >= ${instantLiteral(since)} AND ${c} < ${instantLiteral(until)}`;
}

function keyed(table: TableConfig, from: string, since: string, until: string): string {
  const c = ident(table.cursor.column, 'cursor column');
  return `SELECT toStartOfHour(toDateTime64(${c}, 6, 'UTC')) AS hour, ${keyHash(table)} AS h
          FROM ${from} WHERE ${inRange(table, since, until)}`;
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
/** Keys shown of each kind (missing, extra, duplicated) for an hour that differs. */
export const SAMPLE_SIZE = 5;

/** One natural key, column by column, as text of its staging type. */
export type KeySample = Record<string, string>;

export type KeyDiff = {
  onlyInA: number;
  onlyInB: number;
  exact: boolean;
  /** Up to SAMPLE_SIZE key hashes of each side's own keys, to name them (`keysOf`). */
  sampleA: string[];
  sampleB: string[];
};

type Side = { client: ClickHouseClient; from: string };

/**
 * Keys of one hour present on one side only. Narrows with per-bucket digests first, then fetches the
 * hashes of differing buckets only, so memory stays small however big the hour. `exact` is false when
 * too many buckets differ to fetch them all (then the counts are the key-count difference, and the
 * samples come from the first buckets). `within` clips the hour to the compared range: rows past the
 * watermark are lag, not missing keys.
 */
export async function diffKeys(
  a: Side,
  b: Side,
  table: TableConfig,
  hour: string,
  within?: { since: string; until: string },
): Promise<KeyDiff> {
  const hourEnd = Date.parse(hour) + 3_600_000;
  const start = new Date(Math.max(Date.parse(hour), Date.parse(within?.since ?? hour))).toISOString();
  const end = new Date(Math.min(hourEnd, within ? Date.parse(within.until) : hourEnd)).toISOString();
  const buckets = async (side: Side) =>
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
  if (differing.length === 0) return { onlyInA: 0, onlyInB: 0, exact: true, sampleA: [], sampleB: [] };
  const fetchAll = differing.length <= MAX_BUCKETS_FETCHED;
  const fetched = fetchAll ? differing : differing.slice(0, 4);
  const hashes = async (side: Side) =>
    new Set(
      (
        await rowsOf<{ key: string }>(
          side.client,
          `SELECT DISTINCT toString(h) AS key FROM (${keyed(table, side.from, start, end)})
           WHERE h % ${BUCKETS} IN (${fetched.join(', ')})`,
        )
      ).map((r) => r.key),
    );
  const [ha, hb] = await Promise.all([hashes(a), hashes(b)]);
  const onlyA = [...ha].filter((h) => !hb.has(h));
  const onlyB = [...hb].filter((h) => !ha.has(h));
  const samples = { sampleA: onlyA.slice(0, SAMPLE_SIZE), sampleB: onlyB.slice(0, SAMPLE_SIZE) };
  if (fetchAll) return { onlyInA: onlyA.length, onlyInB: onlyB.length, exact: true, ...samples };
  const count = (m: Map<string, string>) => [...m.values()].reduce((n, v) => n + Number(v.split('/')[0]), 0);
  const d = count(ba) - count(bb);
  // With one side empty (a range skipped on purpose, an hour never offloaded) the difference is exact.
  const exact = ba.size === 0 || bb.size === 0;
  return { onlyInA: Math.max(0, d), onlyInB: Math.max(0, -d), exact, ...samples };
}

/** Key columns as text under their own names; filter before this (the aliases shadow the columns). */
function keyColumns(table: TableConfig): string {
  return table.naturalKey.map((name) => `${stagedText(table, name)} AS ${ident(name, 'column')}`).join(', ');
}

/** The natural keys of one side's rows whose key hashes (from `diffKeys`) are given. */
export async function keysOf(
  side: Side,
  table: TableConfig,
  hashes: readonly string[],
  since: string,
  until: string,
): Promise<KeySample[]> {
  if (hashes.length === 0) return [];
  const wanted = hashes.map((h) => BigInt(h).toString()).join(', ');
  return rowsOf<KeySample>(
    side.client,
    `SELECT DISTINCT ${keyColumns(table)}
     FROM (SELECT * FROM ${side.from} WHERE ${inRange(table, since, until)} AND ${keyHash(table)} IN (${wanted}))
     LIMIT ${SAMPLE_SIZE}`,
  );
}

/** Natural keys one side holds more than once in [since, until), with how many copies. */
export async function duplicatedKeys(
  side: Side,
  table: TableConfig,
  since: string,
  until: string,
): Promise<{ key: KeySample; copies: number }[]> {
  const names = table.naturalKey.map((name) => ident(name, 'column')).join(', ');
  const rows = await rowsOf<KeySample & { k2_copies: string }>(
    side.client,
    `SELECT ${names}, toString(count()) AS k2_copies
     FROM (SELECT ${keyColumns(table)} FROM (SELECT * FROM ${side.from} WHERE ${inRange(table, since, until)}))
     GROUP BY ${names} HAVING count() > 1 ORDER BY ${names} LIMIT ${SAMPLE_SIZE}`,
  );
  return rows.map(({ k2_copies, ...key }) => ({ key, copies: Number(k2_copies) }));
}
