import { mkdirSync, readdirSync, utimesSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ClickHouseClient } from '@clickhouse/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultConfig, tableByName } from '../../../src/config/load.ts';
import type { TableConfig } from '../../../src/config/schema.ts';
import { fastAppend } from '../../../src/iceberg/commit.ts';
import { fileUri, LocalObjectStore } from '../../../src/iceberg/local-store.ts';
import {
  compactTable,
  expireSnapshots,
  ManifestReader,
  removeOrphanFiles,
} from '../../../src/iceberg/maintenance/index.ts';
import { currentSnapshot } from '../../../src/iceberg/metadata.ts';
import { createPathCatalog } from '../../../src/iceberg/path-catalog.ts';
import { createTable, liveDataFiles, loadTable, newestMarker } from '../../../src/iceberg/table.ts';
import { makeBatch } from '../../../src/plan/batch.ts';
import { openChdb, profileQuery, rows, stagingSelect, writeParquet } from '../chdb-helpers.ts';
import { generators } from '../generators.ts';

/**
 * Maintenance on tables ClickHouse reads back (chDB `icebergLocal`): compaction through ClickHouse
 * itself, snapshot expiry and orphan removal must leave the same rows, per column and per key.
 */
const config = defaultConfig();
const cwd = process.cwd();
const store = new LocalObjectStore();
let dir: string;
let chdb: ClickHouseClient;
let catalog: ReturnType<typeof createPathCatalog>;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'k2-maintenance-chdb-'));
  chdb = openChdb(dir);
  catalog = createPathCatalog(store, fileUri(join(dir, 'warehouse')));
});
afterAll(async () => {
  await chdb?.close();
  process.chdir(cwd);
  if (dir) await rm(dir, { recursive: true, force: true });
});

const tablePath = (t: TableConfig) => join(dir, 'warehouse', t.target.namespace, t.target.name);
const iceberg = (t: TableConfig) => `icebergLocal('${tablePath(t)}')`;
const deps = () => ({ store, catalog });

/** Rows `first .. first + n - 1` of the generators, with per-file constants `v`. */
const numbered = (first: number, n: number, v: Record<string, string>) =>
  `numbers(${first}, ${n}) AS n, (SELECT ${Object.entries(v)
    .map(([k, x]) => `'${x}' AS ${k}`)
    .join(', ')}) AS v`;

type Part = { first: number; n: number; v: Record<string, string> };

/** One batch per entry, appended in order; a batch stages one file per part (`extra` adds more). */
async function offload(table: TableConfig, batches: Array<Part & { hour: string; extra?: Part[] }>) {
  await createTable(deps(), {
    table: table.target,
    config: table,
    location: catalog.tableLocation(table.target),
  });
  const dataDir = join(tablePath(table), 'data');
  mkdirSync(dataDir, { recursive: true });
  const results = [];
  for (const b of batches) {
    const batch = makeBatch(table.name, `${b.hour}:00:00Z`, `${b.hour}:59:59Z`);
    const parts = [b, ...(b.extra ?? [])];
    const files: string[] = [];
    for (const [i, p] of parts.entries()) {
      const path = join(dataDir, `${batch.batchId}-${i}.parquet`);
      await writeParquet(
        chdb,
        path,
        stagingSelect(table, generators[table.layer]),
        numbered(p.first, p.n, p.v),
      );
      files.push(fileUri(path));
    }
    const rows = parts.reduce((n, p) => n + p.n, 0);
    results.push(await fastAppend(deps(), { table: table.target, marker: { ...batch, rows }, files }));
  }
  return results;
}

/** Count, distinct keys, and an order-free hash over every column of every row. */
function fingerprint(table: TableConfig, from: string) {
  const columns = table.columns.map((c) => `\`${c.name}\``).join(', ');
  const key = table.naturalKey.map((k) => `\`${k}\``).join(', ');
  return `SELECT toString(count()) AS rows, toString(uniqExact(${key})) AS keys,
    toString(sumWithOverflow(cityHash64(${columns}))) AS hash FROM ${from}`;
}

async function readBack(table: TableConfig, settings = '') {
  const [profile] = await rows(chdb, `${profileQuery(table, iceberg(table))} ${settings}`);
  const [print] = await rows(chdb, `${fingerprint(table, iceberg(table))} ${settings}`);
  return { profile, print };
}

async function liveFiles(table: TableConfig) {
  const { metadata } = await loadTable(deps(), table.target);
  return liveDataFiles(store, metadata);
}

describe('maintenance read back by chDB', () => {
  const bronze = tableByName(config, 'bronze_trades_binance');

  it('compaction through ClickHouse, then expiry, then orphan removal: same rows, fewer files and snapshots', async () => {
    const hours = [
      '2024-01-01T00',
      '2024-01-01T01',
      '2024-01-01T02',
      '2024-01-02T00',
      '2024-01-02T01',
      '2024-01-02T02',
    ];
    // The last batch also holds the only file of a third day: it stays, an existing entry of a merged manifest.
    const lone = { first: 9000, n: 50, v: { day: '2024-01-03' } };
    const appended = await offload(
      bronze,
      hours.map((hour, i) => ({
        hour,
        first: i * 1000,
        n: 400 + i * 10,
        v: { day: hour.slice(0, 10) },
        ...(i === 5 ? { extra: [lone] } : {}),
      })),
    );
    const want = await readBack(bronze);
    expect(want.print?.rows).toBe(String(6 * 400 + 150 + 50));
    expect(want.print?.keys).toBe(want.print?.rows);
    const lastAppend = appended.at(-1)!.marker;

    const compacted = await compactTable(deps(), {
      table: bronze.target,
      clickhouse: chdb,
      targetFileRows: 10_000,
    });
    expect(compacted).toMatchObject({ status: 'compacted', partitions: 2, removedFiles: 6, addedFiles: 2 });
    expect(await readBack(bronze)).toEqual(want);
    expect(await liveFiles(bronze)).toHaveLength(3);
    const perDay = `SELECT toString(toDate(exchange_timestamp)) AS d, toString(count()) AS c FROM ${iceberg(bronze)} GROUP BY d ORDER BY d`;
    expect(await rows(chdb, perDay)).toEqual([
      { d: '2024-01-01', c: '1230' },
      { d: '2024-01-02', c: '1320' },
      { d: '2024-01-03', c: '50' },
    ]);
    let { metadata } = await loadTable(deps(), bronze.target);
    const reader = new ManifestReader(store);
    const statuses = [];
    for (const m of await reader.list(currentSnapshot(metadata)!['manifest-list']))
      for (const e of (await reader.manifest(m.manifest_path)).entries) statuses.push(e.status);
    expect(statuses.sort()).toEqual([0, 1, 1, 2, 2, 2, 2, 2, 2]);
    expect(newestMarker(metadata)).toMatchObject({ batchId: lastAppend.batchId, rows: lastAppend.rows });
    // Time travel to before the compaction reads the small files.
    expect(await readBack(bronze, `SETTINGS iceberg_snapshot_id = ${lastAppend.snapshotId}`)).toEqual(want);
    const third = appended[2]!.marker.snapshotId;
    const [thirdCount] = await rows(
      chdb,
      `SELECT toString(count()) AS c FROM ${iceberg(bronze)} SETTINGS iceberg_snapshot_id = ${third}`,
    );
    expect(thirdCount?.c).toBe(String(400 + 410 + 420));

    // Keep the compaction and its parent: the small files are still read by the parent. Snapshots and
    // files here are stamped by the real clock, so a cutoff just past now is after all of them.
    const keepTwo = await expireSnapshots(deps(), {
      table: bronze.target,
      olderThanMs: Date.now() + 1,
      retainLast: 2,
    });
    expect(keepTwo).toMatchObject({ retainedSnapshots: 2, deletedDataFiles: 0, deletedManifestLists: 5 });
    expect(await readBack(bronze)).toEqual(want);
    expect(await readBack(bronze, `SETTINGS iceberg_snapshot_id = ${lastAppend.snapshotId}`)).toEqual(want);

    const keepOne = await expireSnapshots(deps(), {
      table: bronze.target,
      olderThanMs: Date.now() + 1,
      retainLast: 1,
    });
    expect(keepOne).toMatchObject({ retainedSnapshots: 1, deletedDataFiles: 6 });
    expect(await readBack(bronze)).toEqual(want);
    ({ metadata } = await loadTable(deps(), bronze.target));
    expect(metadata.snapshots.map((s) => s['snapshot-id'])).toEqual([compacted.snapshotId]);
    expect(newestMarker(metadata)?.batchId).toBe(lastAppend.batchId);

    // A crashed writer's file from long ago, and one of a commit in flight.
    const dataDir = join(tablePath(bronze), 'data');
    const old = join(dataDir, 'crashed.parquet');
    const young = join(dataDir, 'in-flight.parquet');
    writeFileSync(old, 'x');
    writeFileSync(young, 'y');
    // File times are the filesystem's (the real clock): ages are set and cut off against that clock.
    const fourDaysAgo = new Date(Date.now() - 4 * 24 * 3600 * 1000);
    utimesSync(old, fourDaysAgo, fourDaysAgo);
    const orphans = await removeOrphanFiles(deps(), {
      table: bronze.target,
      olderThanMs: Date.now() - 3600_000,
    });
    expect(orphans).toMatchObject({ orphans: [fileUri(old)], deleted: 1, young: 1 });
    const live = (await liveFiles(bronze)).map((f) => f.file.file_path);
    expect(
      readdirSync(dataDir)
        .map((n) => fileUri(join(dataDir, n)))
        .sort(),
    ).toEqual([...live, fileUri(young)].sort());
    expect(await readBack(bronze)).toEqual(want);
  });

  it('silver (arrays, maps, uuids, decimal(38), nullable) survives a ClickHouse rewrite value for value', async () => {
    const silver = tableByName(config, 'silver_trades');
    const v = { day: '2024-03-01', exchange: 'kraken', asset_class: 'crypto' };
    await offload(silver, [
      { hour: '2024-03-01T00', first: 0, n: 300, v },
      { hour: '2024-03-01T01', first: 300, n: 200, v },
      { hour: '2024-03-01T02', first: 500, n: 100, v },
    ]);
    const want = await readBack(silver);
    const result = await compactTable(deps(), {
      table: silver.target,
      clickhouse: chdb,
      targetFileRows: 10_000,
      minFiles: 3,
    });
    expect(result).toMatchObject({ status: 'compacted', removedFiles: 3, addedFiles: 1, rows: 600 });
    expect(await readBack(silver)).toEqual(want);
    expect(want.print?.keys).toBe('600');
  });
});
