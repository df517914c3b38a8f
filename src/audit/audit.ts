import type { ClickHouseClient } from '@clickhouse/client';
import { qualifiedName } from '../clickhouse/sql.ts';
import { selectTables } from '../config/load.ts';
import type { TableConfig } from '../config/schema.ts';
import { identString } from '../iceberg/catalog.ts';
import type { PipelineDeps } from '../pipeline/deps.ts';
import { targetOf } from '../pipeline/plan-cycle.ts';
import { stagingSelect } from '../stage/select.ts';
import {
  diffKeys,
  duplicatedKeys,
  type HourPrint,
  hourPrints,
  type KeySample,
  keysOf,
  SAMPLE_SIZE,
} from './compare.ts';
import { icebergTableFunction, type S3Access } from './iceberg-source.ts';
import { type AuditedSkip, auditedSkips, type Segment, skipsWithin, splitBySkips } from './skips.ts';

export type HourAudit = {
  hour: string;
  clickhouseRows: number;
  /** Rows Iceberg should hold: ClickHouse rows, or for re-aggregated tables (candles) their distinct keys. */
  expectedRows: number;
  icebergRows: number;
  missingKeys: number;
  extraKeys: number;
  /** Natural keys Iceberg holds more than once (and, for context, ClickHouse itself). */
  duplicateKeys: number;
  sourceDuplicateKeys: number;
  /** Keys Iceberg lacks in a range an audited `watermark set` moved past on purpose: not a mismatch. */
  skippedKeys: number;
  exact: boolean;
  ok: boolean;
  /** For an hour that differs: a few of the keys missing from, extra in, and duplicated in Iceberg. */
  samples: HourSamples | null;
};

export type HourSamples = {
  missing: KeySample[];
  extra: KeySample[];
  duplicated: { key: KeySample; copies: number }[];
};

export type TableAudit = {
  table: string;
  iceberg: string;
  metadataLocation: string | null;
  /** What was compared: cursor range [from, to) with to = the watermark, hourly by the cursor column. */
  compared: { cursorColumn: string; naturalKey: string[]; from: string; to: string } | null;
  note: string | null;
  /** Ranges of the compared span the watermark was moved past by hand: who, when, why, keys left out. */
  skips: (AuditedSkip & { skippedKeys: number })[];
  hours: HourAudit[];
  totals: Omit<HourAudit, 'hour' | 'exact' | 'ok' | 'samples'>;
  ok: boolean;
};

export type AuditReport = { checkedAt: string; hours: number; tables: TableAudit[]; ok: boolean };

export type AuditOptions = {
  hours: number;
  tables?: readonly string[] | undefined;
  /** Compare from here instead of `now - hours` (the demo compares its whole span). */
  since?: string;
  reader: ClickHouseClient;
  s3?: S3Access;
};

const HOUR = 3_600_000;
const floorHour = (ms: number) => Math.floor(ms / HOUR) * HOUR;

/** One hour's verdict from the two sides' prints, before any key is fetched (ok is decided after). */
export function judgeHour(
  table: TableConfig,
  ch: HourPrint | undefined,
  ice: HourPrint | undefined,
): HourAudit {
  const hour = (ch ?? ice)?.hour as string;
  const reaggregated = table.reaggregate !== undefined;
  const clickhouseRows = ch?.rows ?? 0;
  const expectedRows = reaggregated ? (ch?.keys ?? 0) : clickhouseRows;
  const sourceDuplicateKeys = reaggregated ? 0 : (ch?.duplicateKeys ?? 0);
  const same = (ch?.keys ?? 0) === (ice?.keys ?? 0) && (ch?.digest ?? '0') === (ice?.digest ?? '0');
  const result: HourAudit = {
    hour,
    clickhouseRows,
    expectedRows,
    icebergRows: ice?.rows ?? 0,
    missingKeys: same ? 0 : Math.max(0, (ch?.keys ?? 0) - (ice?.keys ?? 0)),
    extraKeys: same ? 0 : Math.max(0, (ice?.keys ?? 0) - (ch?.keys ?? 0)),
    duplicateKeys: ice?.duplicateKeys ?? 0,
    sourceDuplicateKeys,
    skippedKeys: 0,
    exact: same,
    ok: false,
    samples: null,
  };
  return result;
}

/**
 * Whether an hour's numbers balance: Iceberg's rows as expected less the skipped, no key missing or
 * extra, no more duplicates than ClickHouse's own.
 */
export const isOk = (h: HourAudit) =>
  h.icebergRows === h.expectedRows - h.skippedKeys &&
  h.missingKeys === 0 &&
  h.extraKeys === 0 &&
  h.duplicateKeys <= h.sourceDuplicateKeys;

async function auditTable(
  deps: PipelineDeps,
  table: TableConfig,
  options: AuditOptions,
  now: Date,
): Promise<TableAudit> {
  const ident = targetOf(table);
  const base = {
    table: table.name,
    iceberg: identString(ident),
    skips: [] as TableAudit['skips'],
    hours: [] as HourAudit[],
    totals: {
      clickhouseRows: 0,
      expectedRows: 0,
      icebergRows: 0,
      missingKeys: 0,
      extraKeys: 0,
      duplicateKeys: 0,
      sourceDuplicateKeys: 0,
      skippedKeys: 0,
    },
  };
  const watermark = (await deps.watermarks.list()).find((w) => w.table === table.name);
  const metadataLocation = (await deps.catalog.currentMetadataLocation(ident)) ?? null;
  if (!watermark)
    return { ...base, metadataLocation, compared: null, note: 'never offloaded: no watermark yet', ok: true };
  // Rows older than the hot tier's TTL may be gone from ClickHouse: an hour of margin keeps them out.
  const ttlStart = now.getTime() - table.ttlSeconds * 1000 + HOUR;
  const wanted = options.since ? Date.parse(options.since) : now.getTime() - options.hours * HOUR;
  const from = floorHour(Math.max(wanted, ttlStart));
  const to = Date.parse(watermark.cursor);
  const compared = {
    cursorColumn: table.cursor.column,
    naturalKey: table.naturalKey,
    from: new Date(from).toISOString(),
    to: watermark.cursor,
  };
  const notes: string[] = [];
  if (wanted < ttlStart)
    notes.push(`hours before ${compared.from} are past the hot-tier TTL and not compared`);
  if (to <= from)
    return {
      ...base,
      metadataLocation,
      compared,
      note: [...notes, 'the watermark is before the compared range: nothing offloaded to compare'].join('; '),
      ok: true,
    };
  // Candles as offloaded: re-aggregated from the hot tier's partial rows to one final row each.
  const source = table.reaggregate
    ? `(${stagingSelect(table, compared.from, compared.to)})`
    : qualifiedName(table.source.database, table.source.table);
  const ch = await hourPrints(deps.clickhouse, table, source, compared.from, compared.to);
  const iceFrom = metadataLocation ? icebergTableFunction(metadataLocation, options.s3) : undefined;
  const ice = iceFrom ? await hourPrints(options.reader, table, iceFrom, compared.from, compared.to) : [];
  if (!iceFrom) notes.push('the Iceberg table does not exist yet');
  const byHour = new Map<string, [HourPrint | undefined, HourPrint | undefined]>();
  for (const h of ch) byHour.set(h.hour, [h, undefined]);
  for (const h of ice) byHour.set(h.hour, [byHour.get(h.hour)?.[0], h]);
  const trail = await deps.watermarks.audit({ table: table.name, limit: 10_000 });
  const skips = skipsWithin(auditedSkips(trail), from, to).map((s) => ({ ...s, skippedKeys: 0 }));
  const sides = iceFrom && {
    ch: { client: deps.clickhouse, from: source },
    ice: { client: options.reader, from: iceFrom },
  };
  const hours: HourAudit[] = [];
  for (const hour of [...byHour.keys()].sort()) {
    const [c, i] = byHour.get(hour) as [HourPrint | undefined, HourPrint | undefined];
    const h = judgeHour(table, c, i);
    const since = Math.max(Date.parse(hour), from);
    const until = Math.min(Date.parse(hour) + HOUR, to);
    if (!h.exact && sides)
      Object.assign(h, await diffHour(table, sides, hour, splitBySkips(since, until, skips)));
    else if (!h.exact) h.exact = true;
    // Digests that differ with counts that cannot say where (too many differing keys to fetch, as a
    // late trade changing many candles makes) are a mismatch too, not a pass.
    h.ok = isOk(h) && h.exact;
    if (!h.ok && sides && h.duplicateKeys > h.sourceDuplicateKeys)
      h.samples = {
        ...(h.samples ?? { missing: [], extra: [] }),
        duplicated: await duplicatedKeys(
          sides.ice,
          table,
          new Date(since).toISOString(),
          new Date(until).toISOString(),
        ),
      };
    hours.push(h);
  }
  const totals = { ...base.totals };
  for (const h of hours) for (const k of Object.keys(totals) as (keyof typeof totals)[]) totals[k] += h[k];
  return {
    ...base,
    metadataLocation,
    compared,
    note: notes.length ? notes.join('; ') : null,
    skips,
    hours,
    totals,
    ok: hours.every((h) => h.ok),
  };
}

type Sides = Record<'ch' | 'ice', { client: ClickHouseClient; from: string }>;

/**
 * Where the keys of an hour differ, part by part: keys Iceberg lacks inside an audited skip are
 * skipped keys, elsewhere missing ones; for those, and for extra keys, a few are named.
 */
async function diffHour(
  table: TableConfig,
  sides: Sides,
  hour: string,
  parts: Segment<TableAudit['skips'][number]>[],
): Promise<Pick<HourAudit, 'missingKeys' | 'extraKeys' | 'skippedKeys' | 'exact' | 'samples'>> {
  const out = { missingKeys: 0, extraKeys: 0, skippedKeys: 0, exact: true };
  const samples: HourSamples = { missing: [], extra: [], duplicated: [] };
  for (const part of parts) {
    const diff = await diffKeys(sides.ch, sides.ice, table, hour, part);
    out.exact &&= diff.exact;
    out.extraKeys += diff.onlyInB;
    if (part.skip) {
      out.skippedKeys += diff.onlyInA;
      part.skip.skippedKeys += diff.onlyInA;
    } else out.missingKeys += diff.onlyInA;
    if (!part.skip && samples.missing.length < SAMPLE_SIZE)
      samples.missing.push(...(await keysOf(sides.ch, table, diff.sampleA, part.since, part.until)));
    if (samples.extra.length < SAMPLE_SIZE)
      samples.extra.push(...(await keysOf(sides.ice, table, diff.sampleB, part.since, part.until)));
  }
  samples.missing = samples.missing.slice(0, SAMPLE_SIZE);
  samples.extra = samples.extra.slice(0, SAMPLE_SIZE);
  const differs = out.missingKeys + out.extraKeys > 0;
  return { ...out, samples: differs ? samples : null };
}

/**
 * The count audit of the runbooks, done right: per table and hour of the cursor, below the watermark
 * only (rows above it are lag, not a gap), ClickHouse against Iceberg as ClickHouse's own Iceberg
 * reader sees the table's current metadata: rows, missing and extra natural keys, duplicate keys.
 */
export async function auditTables(deps: PipelineDeps, options: AuditOptions): Promise<AuditReport> {
  const now = deps.clock();
  const tables = selectTables(deps.config, options.tables);
  const results: TableAudit[] = [];
  for (const table of tables) results.push(await auditTable(deps, table, options, now));
  return {
    checkedAt: now.toISOString(),
    hours: options.hours,
    tables: results,
    ok: results.every((t) => t.ok),
  };
}
