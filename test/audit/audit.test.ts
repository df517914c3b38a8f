import { beforeAll, describe, expect, it } from 'vitest';
import { auditTables } from '../../src/audit/audit.ts';
import { generateTrades } from '../../src/clickhouse/demo-trades.ts';
import { defaultConfig, parseConfig } from '../../src/config/load.ts';
import { fastAppend } from '../../src/iceberg/commit.ts';
import { joinUri } from '../../src/iceberg/object-store.ts';
import { liveDataFiles, loadTable } from '../../src/iceberg/table.ts';
import { icebergDeps } from '../../src/pipeline/deps.ts';
import { runCycle } from '../../src/pipeline/local-runner.ts';
import { makeBatch } from '../../src/plan/batch.ts';
import { useRig } from '../resilience/fed-rig.ts';
import { CYCLE_MS, fakeClock, pastStart, type Rig, tradeFeed } from '../resilience/harness.ts';

/**
 * The count audit catches what a count alone would not: a key Iceberg holds twice, and an hour where
 * Iceberg lacks one key and holds another instead (the same number of rows on both sides). Each table
 * state is made by hand after a clean offload, the way a faulty writer or a changed source would leave it.
 */
const TABLE = 'bronze_trades_binance';
const config = parseConfig({ tables: defaultConfig().tables.filter((t) => t.name === TABLE) }, 'one table');
const target = { namespace: 'cold', name: TABLE };
/** Sequence numbers of back-dated test trades start here, far above any fed trade's. */
const BACK_DATED = 1e18;

describe('audit: ClickHouse against Iceberg, per hour and key', () => {
  const clock = fakeClock(pastStart(3));
  const setup = useRig({ name: 'audit', clock, config });
  const deps = (overrides: Parameters<Rig['deps']>[0] = {}) => setup.rig.deps({ config, ...overrides });
  const audit = async () => {
    const report = await auditTables(deps(), { hours: 6, reader: setup.rig.clickhouse });
    return report.tables[0];
  };

  /**
   * Gives the trades `where` selects a new sequence number (`sequence`, an expression of the old one):
   * their natural keys change in ClickHouse, as a corrected source would change them. Filtered in a
   * subquery: an alias would shadow the column.
   */
  const resequence = async (where: string, sequence: string) => {
    const ch = setup.rig.clickhouse;
    await ch.command({
      query: `INSERT INTO k2.bronze_trades_binance SELECT * REPLACE (${sequence} AS sequence_number)
              FROM (SELECT * FROM k2.bronze_trades_binance WHERE ${where})`,
    });
    await ch.command({
      query: `ALTER TABLE k2.bronze_trades_binance DELETE WHERE ${where}`,
      clickhouse_settings: { mutations_sync: '2' },
    });
  };
  /** Changes one trade's natural key in ClickHouse. */
  const rekey = (symbol: string, from: string, to: string) =>
    resequence(`symbol = '${symbol}' AND sequence_number = ${from}`, to);

  beforeAll(async () => {
    const feed = tradeFeed(setup.rig.clickhouse, clock, {
      from: clock.now().getTime() - 3 * 3_600_000,
      seed: 88,
      rowsPerHour: 600,
    });
    await feed();
    await runCycle(deps(), {});
    clock.advance(CYCLE_MS);
  });

  it('a clean offload audits clean', async () => {
    const table = await audit();
    expect(table?.ok).toBe(true);
    expect(table?.hours.length).toBeGreaterThanOrEqual(2);
    expect(table?.totals).toMatchObject({ missingKeys: 0, extraKeys: 0, duplicateKeys: 0 });
    expect(table?.totals.icebergRows).toBe(table?.totals.expectedRows);
  });

  it('an hour missing one key and holding another instead, same row count: a mismatch naming one of each', async () => {
    const ch = setup.rig.clickhouse;
    const watermark = (await deps().watermarks.get(TABLE)).cursor;
    const result = await ch.query({
      query: `SELECT symbol, toString(sequence_number) AS seq FROM k2.bronze_trades_binance
              WHERE ingestion_timestamp < parseDateTime64BestEffort('${watermark}')
              ORDER BY ingestion_timestamp, sequence_number LIMIT 1`,
      format: 'JSONEachRow',
    });
    const [row] = await result.json<{ symbol: string; seq: string }>();
    if (!row) throw new Error('expected an offloaded row');
    // The source's key of that row changes (a corrected sequence number): Iceberg still has the old one.
    const moved = (BigInt(row.seq) + 1_000_000_000_000n).toString();
    await rekey(row.symbol, row.seq, moved);

    const table = await audit();
    expect(table?.ok).toBe(false);
    const bad = table?.hours.filter((h) => !h.ok) ?? [];
    expect(bad).toHaveLength(1);
    expect(bad[0]).toMatchObject({ missingKeys: 1, extraKeys: 1, duplicateKeys: 0, exact: true });
    expect(bad[0]?.icebergRows).toBe(bad[0]?.clickhouseRows);
    // Named, so the operator can look them up: the new key ClickHouse has, the old one Iceberg kept.
    expect(bad[0]?.samples).toEqual({
      missing: [expect.objectContaining({ symbol: row.symbol, sequence_number: moved })],
      extra: [expect.objectContaining({ symbol: row.symbol, sequence_number: row.seq })],
      duplicated: [],
    });

    // Put back as it was, the audit is clean again.
    await rekey(row.symbol, moved, row.seq);
    expect((await audit())?.ok).toBe(true);
  });

  /** Trades that reach ClickHouse in an hour already offloaded (back-dated), with keys of their own. */
  const backDate = async (rows: number, endMs: number) => {
    const fed = await generateTrades(setup.rig.clickhouse, {
      rows: rows * 2,
      spanHours: 0.1,
      end: new Date(endMs),
      seed: 9,
      lateFraction: 0,
      sequenceOffset: BACK_DATED,
    });
    return fed.rows.binance ?? 0;
  };
  const removeBackDated = () =>
    setup.rig.clickhouse.command({
      query: `ALTER TABLE k2.bronze_trades_binance DELETE WHERE sequence_number >= ${BACK_DATED}`,
      clickhouse_settings: { mutations_sync: '2' },
    });
  const watermarkMs = async () => Date.parse((await deps().watermarks.get(TABLE)).cursor);

  it('a few back-dated keys in an offloaded hour: each counted missing and named, none extra', async () => {
    const added = await backDate(5, (await watermarkMs()) - 90 * 60_000);
    expect(added).toBeGreaterThanOrEqual(3);
    const table = await audit();
    const bad = table?.hours.filter((h) => !h.ok) ?? [];
    expect(bad).toHaveLength(1);
    expect(bad[0]).toMatchObject({ missingKeys: added, extraKeys: 0, duplicateKeys: 0, exact: true });
    expect(bad[0]?.samples?.missing).toHaveLength(added);
    expect(bad[0]?.samples?.extra).toEqual([]);
    await removeBackDated();
    expect((await audit())?.ok).toBe(true);
  });

  it('hundreds of back-dated keys in one hour: counted from the key totals, marked inexact, none extra', async () => {
    const added = await backDate(400, (await watermarkMs()) - 90 * 60_000);
    const table = await audit();
    const bad = table?.hours.filter((h) => !h.ok) ?? [];
    expect(bad).toHaveLength(1);
    // Too many buckets differ to fetch every key: the difference of the key counts, said to be inexact.
    expect(bad[0]).toMatchObject({ missingKeys: added, extraKeys: 0, exact: false });
    await removeBackDated();
  });

  it("a changed key in the watermark's own hour and one in another: each hour one missing, one extra", async () => {
    const ch = setup.rig.clickhouse;
    const cursor = (await deps().watermarks.get(TABLE)).cursor;
    const pick = async (order: 'ASC' | 'DESC') => {
      const result = await ch.query({
        query: `SELECT symbol, toString(sequence_number) AS seq FROM k2.bronze_trades_binance
                WHERE ingestion_timestamp < parseDateTime64BestEffort('${cursor}')
                ORDER BY ingestion_timestamp ${order}, sequence_number LIMIT 1`,
        format: 'JSONEachRow',
      });
      const [row] = await result.json<{ symbol: string; seq: string }>();
      if (!row) throw new Error('expected an offloaded row');
      return row;
    };
    // The newest offloaded row shares its hour with rows past the watermark: those are lag, not missing.
    const [first, last] = [await pick('ASC'), await pick('DESC')];
    const after = await ch.query({
      query: `SELECT count() AS n FROM k2.bronze_trades_binance
              WHERE ingestion_timestamp >= parseDateTime64BestEffort('${cursor}')`,
      format: 'JSONEachRow',
    });
    expect(Number((await after.json<{ n: string }>())[0]?.n)).toBeGreaterThan(0);
    const moved = (seq: string) => (BigInt(seq) + 1_000_000_000_000n).toString();
    await rekey(first.symbol, first.seq, moved(first.seq));
    await rekey(last.symbol, last.seq, moved(last.seq));

    const table = await audit();
    const bad = table?.hours.filter((h) => !h.ok) ?? [];
    expect(bad.map((h) => ({ missing: h.missingKeys, extra: h.extraKeys, exact: h.exact }))).toEqual([
      { missing: 1, extra: 1, exact: true },
      { missing: 1, extra: 1, exact: true },
    ]);
    await rekey(first.symbol, moved(first.seq), first.seq);
    await rekey(last.symbol, moved(last.seq), last.seq);
    expect((await audit())?.ok).toBe(true);
  });

  it('hundreds of keys changed in one hour, the key count unchanged: red though no count can say which', async () => {
    const cursor = (await deps().watermarks.get(TABLE)).cursor;
    const hour = new Date(Math.floor(Date.parse(cursor) / 3_600_000) * 3_600_000 - 3_600_000).toISOString();
    // Every trade of an offloaded hour gets a corrected sequence number (as a late trade changes many
    // candles): as many keys as before, none of them the ones Iceberg holds.
    const inHour = `ingestion_timestamp >= parseDateTime64BestEffort('${hour}')
      AND ingestion_timestamp < parseDateTime64BestEffort('${hour}') + INTERVAL 1 HOUR`;
    await resequence(`${inHour} AND sequence_number < ${BACK_DATED}`, `sequence_number + ${BACK_DATED}`);
    const table = await audit();
    const bad = table?.hours.filter((h) => !h.ok) ?? [];
    expect(bad.map((h) => h.hour)).toEqual([hour.replace('.000Z', 'Z')]);
    expect(bad[0]?.exact).toBe(false);
    expect(bad[0]?.icebergRows).toBe(bad[0]?.clickhouseRows);
    expect(table?.ok).toBe(false);
    await resequence(`sequence_number >= ${BACK_DATED}`, `sequence_number - ${BACK_DATED}`);
    expect((await audit())?.ok).toBe(true);
  });

  it('compares the hours asked for, never those the hot tier TTL may have emptied', async () => {
    const now = clock.now().getTime();
    const floorHour = (ms: number) => new Date(Math.floor(ms / 3_600_000) * 3_600_000).toISOString();
    const lastHour = (await auditTables(deps(), { hours: 1, reader: setup.rig.clickhouse })).tables[0];
    expect(lastHour?.compared?.from).toBe(floorHour(now - 3_600_000));
    expect(lastHour?.note).toBeNull();
    // Eight days asked, seven kept: compared from an hour inside the TTL, and said so.
    const week = (await auditTables(deps(), { hours: 8 * 24, reader: setup.rig.clickhouse })).tables[0];
    const ttlStart = floorHour(now - 7 * 24 * 3_600_000 + 3_600_000);
    expect(week?.compared?.from).toBe(ttlStart);
    expect(week?.note).toBe(`hours before ${ttlStart} are past the hot-tier TTL and not compared`);
    expect(week?.ok).toBe(true);
  });

  it('an Iceberg table the catalog no longer has: every offloaded key is missing', async () => {
    const d = deps();
    const catalog = Object.create(d.catalog) as typeof d.catalog;
    catalog.currentMetadataLocation = async () => undefined;
    const table = (await auditTables({ ...d, catalog }, { hours: 6, reader: setup.rig.clickhouse }))
      .tables[0];
    expect(table?.ok).toBe(false);
    expect(table?.note).toBe('the Iceberg table does not exist yet');
    expect(table?.totals.missingKeys).toBe(table?.totals.expectedRows);
    expect(table?.totals.missingKeys).toBeGreaterThan(0);
    expect(table?.totals.icebergRows).toBe(0);
    // With nothing on one side the counts are exact: every key of every hour is missing.
    expect(table?.hours.map((h) => h.exact)).toEqual(table?.hours.map(() => true));
    // Asked for more than the TTL keeps as well: both notes, one after the other.
    const week = (await auditTables({ ...d, catalog }, { hours: 8 * 24, reader: setup.rig.clickhouse }))
      .tables[0];
    expect(week?.note).toBe(
      `hours before ${week?.compared?.from} are past the hot-tier TTL and not compared; the Iceberg table does not exist yet`,
    );
  });

  it('a data file committed twice: every key in it is reported duplicated, once each', async () => {
    const d = deps();
    const { metadata } = await loadTable(d, target);
    const files = await liveDataFiles(d.store, metadata);
    const smallest = files.map((f) => f.file).sort((a, b) => a.record_count - b.record_count)[0];
    if (!smallest) throw new Error('expected a data file');
    // A writer that appended the same rows again under another batch (the very fault the audit is for).
    const copy = joinUri(metadata.location, 'data', 'again', 'part-00000.parquet');
    await d.store.put(copy, await d.store.get(smallest.file_path));
    const cursor = (await d.watermarks.get(TABLE)).cursor;
    /** The copy committed once more, as its own batch just past the watermark. */
    const commitCopy = (n: number) =>
      fastAppend(icebergDeps(d), {
        table: target,
        marker: {
          ...makeBatch(TABLE, cursor, new Date(Date.parse(cursor) + n * 1000).toISOString()),
          rows: smallest.record_count,
        },
        files: [copy],
      });
    await commitCopy(1);

    const table = await audit();
    expect(table?.ok).toBe(false);
    expect(table?.totals).toMatchObject({
      duplicateKeys: smallest.record_count,
      sourceDuplicateKeys: 0,
      missingKeys: 0,
      extraKeys: 0,
    });
    expect(table?.totals.icebergRows).toBe((table?.totals.expectedRows ?? 0) + smallest.record_count);
    // A few of them named, each held twice.
    const named = table?.hours.flatMap((h) => h.samples?.duplicated ?? []) ?? [];
    expect(named.length).toBeGreaterThan(0);
    expect(named.length).toBeLessThanOrEqual(5 * (table?.hours.length ?? 0));
    // Nothing is missing or extra: only the duplicates are named.
    for (const h of table?.hours ?? [])
      expect([h.samples?.missing ?? [], h.samples?.extra ?? []]).toEqual([[], []]);
    for (const d of named) {
      expect(d.copies).toBe(2);
      expect(Object.keys(d.key).sort()).toEqual([...(config.tables[0]?.naturalKey ?? [])].sort());
    }

    // Committed a third time: each of those keys is named with its three copies.
    await commitCopy(2);
    const thrice = (await audit())?.hours.flatMap((h) => h.samples?.duplicated ?? []) ?? [];
    expect(thrice.map((n) => n.copies)).toEqual(named.map(() => 3));
  });
});
