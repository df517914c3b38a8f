import { describe, expect, it } from 'vitest';
import { DEFAULT_ORPHAN_GRACE_MS, removeOrphanFiles } from '../../../src/iceberg/maintenance/index.ts';
import { readManifestList } from '../../../src/iceberg/manifest-list.ts';
import {
  currentSnapshot,
  parseTableMetadata,
  serializeTableMetadata,
} from '../../../src/iceberg/metadata.ts';
import { loadTable } from '../../../src/iceberg/table.ts';
import { HOUR, ident, location, ticksTable } from './support.ts';

const DAY = 24 * HOUR;

/**
 * Orphan removal deletes only what it has proved unreferenced: files the metadata names outside the
 * snapshots (statistics) are kept, and a table whose references cannot all be read is left untouched.
 */
describe('orphan removal keeps what it cannot prove unreferenced', () => {
  it("keeps a table's statistics files, named only in its metadata", async () => {
    const t = await ticksTable();
    await t.append('2024-01-01', 0, ['A']);
    const { metadataLocation, metadata } = await loadTable(t.deps, ident);
    const stats = `${location}/metadata/stats-1.puffin`;
    const partitionStats = `${location}/metadata/partition-stats-1.parquet`;
    for (const uri of [stats, partitionStats]) await t.store.put(uri, new Uint8Array([1]));
    const snapshotId = metadata['current-snapshot-id'];
    const withStats = parseTableMetadata(
      serializeTableMetadata({
        ...metadata,
        extra: {
          statistics: [{ 'snapshot-id': snapshotId, 'statistics-path': stats }],
          'partition-statistics': [{ 'snapshot-id': snapshotId, 'statistics-path': partitionStats }],
        },
      }),
    );
    const next = `${location}/metadata/00002-with-stats.metadata.json`;
    await t.store.put(next, new TextEncoder().encode(serializeTableMetadata(withStats)));
    await t.deps.catalog.swapMetadataLocation(ident, metadataLocation, next);
    t.advance(4 * DAY);

    const result = await removeOrphanFiles(t.deps, {
      table: ident,
      olderThanMs: t.now() - DEFAULT_ORPHAN_GRACE_MS,
    });
    expect(result.orphans).not.toContain(stats);
    expect(result.orphans).not.toContain(partitionStats);
    expect(await t.store.head(stats)).toBeDefined();
    expect(await t.store.head(partitionStats)).toBeDefined();
  });

  it('refuses to delete anything while a manifest the table refers to cannot be read', async () => {
    const t = await ticksTable();
    await t.append('2024-01-01', 0, ['A']);
    await t.append('2024-01-01', 1, ['A']);
    const { metadata } = await loadTable(t.deps, ident);
    const list = currentSnapshot(metadata)?.['manifest-list'] as string;
    const [manifest] = readManifestList(await t.store.get(list), list);
    await t.store.delete(manifest?.manifest_path as string);
    const crashed = `${location}/data/crashed.parquet`;
    await t.store.put(crashed, new Uint8Array([1]));
    t.advance(4 * DAY);
    const files = async () => {
      const out: string[] = [];
      for await (const f of t.store.list(`${location}/`)) out.push(f.uri);
      return out.sort();
    };
    const before = await files();

    await expect(
      removeOrphanFiles(t.deps, { table: ident, olderThanMs: t.now() - DEFAULT_ORPHAN_GRACE_MS }),
    ).rejects.toThrow();
    // The data files that manifest listed are not known to be unreferenced: everything stays.
    expect(await files()).toEqual(before);
    expect(before).toContain(crashed);
  });

  it("never looks outside the table's folder: a neighbouring table's old files stay", async () => {
    const t = await ticksTable();
    await t.append('2024-01-01', 0, ['A']);
    // Another table whose location starts with this one's (ticks-archive beside ticks), and the warehouse.
    const neighbour = `${location}-archive/data/00000-old.parquet`;
    const loose = 'mem://warehouse/README.txt';
    for (const uri of [neighbour, loose]) await t.store.put(uri, new Uint8Array([1]));
    const crashed = `${location}/data/crashed.parquet`;
    await t.store.put(crashed, new Uint8Array([1]));
    t.advance(4 * DAY);

    const result = await removeOrphanFiles(t.deps, {
      table: ident,
      olderThanMs: t.now() - DEFAULT_ORPHAN_GRACE_MS,
    });
    expect(result.orphans).toEqual([crashed]);
    expect([await t.store.head(neighbour), await t.store.head(loose)].map(Boolean)).toEqual([true, true]);
  });
});
