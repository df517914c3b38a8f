import { describe, expect, it } from 'vitest';
import { CommitConflictError, InputError, UnavailableError } from '../../../src/errors.ts';
import type { Catalog, TableIdent } from '../../../src/iceberg/catalog.ts';
import { compactTable, expireSnapshots, snapshotsToExpire } from '../../../src/iceberg/maintenance/index.ts';
import { ENTRY_STATUS, readManifest } from '../../../src/iceberg/manifest.ts';
import { readManifestList, writeManifestList } from '../../../src/iceberg/manifest-list.ts';
import { MemoryCatalog } from '../../../src/iceberg/memory-catalog.ts';
import { ancestry, currentSchema, serializeTableMetadata } from '../../../src/iceberg/metadata.ts';
import { putManifest } from '../../../src/iceberg/snapshot-update.ts';
import { findMarker, liveDataFiles, loadTable, newestMarker } from '../../../src/iceberg/table.ts';
import { withReadBudget } from '../catalog-budget.ts';
import { HOUR, ident, location, racingCatalog, T0, ticksTable } from './support.ts';

const errorOf = (p: Promise<unknown>) =>
  p.then(
    () => undefined,
    (e: unknown) => e as Error,
  );

describe('expire snapshots', () => {
  it('keeps the newest retainLast ancestors and the young ones; time travel to them still reads', async () => {
    const t = await ticksTable();
    for (let h = 0; h < 5; h++) await t.append('2024-01-01', h, ['A']);
    const before = (await loadTable(t.deps, ident)).metadata;
    const ids = before.snapshots.map((s) => s['snapshot-id']);
    const expected = await Promise.all(ids.slice(2).map((id) => t.ids(id)));

    // Snapshots were committed at T0 + 1h ... T0 + 5h; the cutoff leaves the last one young anyway.
    const result = await expireSnapshots(t.deps, { table: ident, olderThanMs: T0 + 5 * HOUR, retainLast: 3 });

    expect(result.expiredSnapshotIds).toEqual(ids.slice(0, 2));
    expect(result).toMatchObject({ retainedSnapshots: 3, deletedManifestLists: 2, attempts: 1 });
    // Appends carry every file forward: only manifest lists became unreachable.
    expect([result.deletedManifests, result.deletedDataFiles]).toEqual([0, 0]);
    const { metadata } = await loadTable(t.deps, ident);
    expect(metadata.snapshots.map((s) => s['snapshot-id'])).toEqual(ids.slice(2));
    expect(metadata['snapshot-log'].map((e) => e['snapshot-id'])).toEqual(ids.slice(2));
    expect(await Promise.all(ids.slice(2).map((id) => t.ids(id)))).toEqual(expected);
    for (const s of before.snapshots.slice(0, 2))
      expect(await t.store.head(s['manifest-list'])).toBeUndefined();
    expect(newestMarker(metadata)?.batchId).toBe(newestMarker(before)?.batchId);
  });

  it('never expires the chain back to the newest offload marker, even past retainLast', async () => {
    const t = await ticksTable();
    await t.append('2024-01-01', 0, ['A']);
    const last = await t.append('2024-01-01', 1, ['A']);
    // Two commits by another engine, without markers, on top of the newest offload.
    await t.foreignCommit();
    await t.foreignCommit();

    const result = await expireSnapshots(t.deps, {
      table: ident,
      olderThanMs: T0 + 100 * HOUR,
      retainLast: 1,
    });

    expect(result.expiredSnapshotIds).toHaveLength(1);
    const { metadata } = await loadTable(t.deps, ident);
    expect(newestMarker(metadata)).toMatchObject({
      batchId: last.marker.batchId,
      snapshotId: last.marker.snapshotId,
    });
    expect([...ancestry(metadata)]).toHaveLength(3);
  });

  it('expiring compacted-away snapshots deletes exactly the replaced files; the marker stays found', async () => {
    const t = await ticksTable();
    for (let h = 0; h < 2; h++) await t.append('2024-01-01', h, ['A', 'B']);
    const last = await t.append('2024-01-01', 2, ['A', 'B']);
    const rows = await t.ids();
    const compacted = await compactTable(t.deps, { table: ident, rewriter: t.rewriter, targetFileRows: 100 });
    expect(compacted).toMatchObject({ status: 'compacted', removedFiles: 6, addedFiles: 2 });
    const replaced = [...t.rowsOf.keys()].filter((k) => !k.includes('compacted-'));

    const result = await expireSnapshots(t.deps, { table: ident, olderThanMs: t.now() + 1, retainLast: 1 });

    expect(result).toMatchObject({ retainedSnapshots: 1, deletedDataFiles: 6, deletedManifestLists: 3 });
    for (const uri of replaced) expect(await t.store.head(uri)).toBeUndefined();
    const { metadata } = await loadTable(t.deps, ident);
    const live = await liveDataFiles(t.store, metadata);
    for (const f of live) expect(await t.store.head(f.file.file_path)).toBeDefined();
    expect(await t.ids()).toEqual(rows);
    expect(newestMarker(metadata)).toMatchObject({
      batchId: last.marker.batchId,
      snapshotId: compacted.snapshotId,
    });
    expect(findMarker(metadata, last.marker.batchId)?.rows).toBe(6);
    // Every object left is referenced: manifests of the current snapshot, its list, metadata files.
    const objects = [...t.store.objects.keys()];
    expect(objects.filter((k) => k.endsWith('.parquet')).sort()).toEqual(
      live.map((f) => f.file.file_path).sort(),
    );
  });

  it('rebuilds on a lost race and keeps the snapshot the other writer committed', async () => {
    const { catalog, beforeNextSwap } = racingCatalog();
    const t = await ticksTable(catalog);
    for (let h = 0; h < 3; h++) await t.append('2024-01-01', h, ['A']);
    let other: bigint | undefined;
    beforeNextSwap(async () => {
      other = (await t.append('2024-01-01', 3, ['A'])).marker.snapshotId;
    });

    const result = await expireSnapshots(t.deps, {
      table: ident,
      olderThanMs: T0 + 3 * HOUR + 1,
      retainLast: 1,
    });

    // The first attempt would have kept the third snapshot as current; the rebuilt one expires it too.
    expect(result).toMatchObject({ attempts: 2, retainedSnapshots: 1 });
    expect(result.expiredSnapshotIds).toHaveLength(3);
    const { metadata } = await loadTable(t.deps, ident);
    expect(metadata.snapshots.map((s) => s['snapshot-id'])).toEqual([other]);
    expect(await t.ids()).toHaveLength(12);
  });

  it('deletes nothing when the commit fails, and gives up after maxAttempts with a retryable error', async () => {
    const inner = new MemoryCatalog();
    let failure: Error = new UnavailableError('catalog down');
    const failing: Catalog = Object.assign(Object.create(inner) as Catalog, {
      async swapMetadataLocation(_t: TableIdent, _e: string, _n: string) {
        throw failure;
      },
    });
    const t = await ticksTable(inner);
    for (let h = 0; h < 3; h++) await t.append('2024-01-01', h, ['A']);
    const objects = [...t.store.objects.keys()].sort();
    const deps = { ...t.deps, catalog: withReadBudget(failing), maxAttempts: 3 };

    expect(await errorOf(expireSnapshots(deps, { table: ident, olderThanMs: t.now() + 1 }))).toBe(failure);
    failure = new CommitConflictError('lost');
    const error = await errorOf(expireSnapshots(deps, { table: ident, olderThanMs: t.now() + 1 }));
    expect(error).toBeInstanceOf(CommitConflictError);
    expect(error?.message).toBe(
      'expiring snapshots of test.ticks lost 3 races for the catalog in a row; run it again later',
    );
    expect((error as CommitConflictError).details).toEqual({ table: 'test.ticks', attempts: 3 });
    expect((error as CommitConflictError).cause).toBe(failure);
    // The unavailable attempt may leave its metadata file (the swap's outcome is unknown); nothing else.
    const after = [...t.store.objects.keys()].filter((k) => !k.endsWith('.metadata.json'));
    expect(after.sort()).toEqual(objects.filter((k) => !k.endsWith('.metadata.json')));
    expect((await loadTable(t.deps, ident)).metadata.snapshots).toHaveLength(3);
  });

  it('reports the expired files the store refused to delete and counts only those deleted', async () => {
    const t = await ticksTable();
    for (let h = 0; h < 3; h++) await t.append('2024-01-01', h, ['A']);
    const { metadata } = await loadTable(t.deps, ident);
    const [oldest] = metadata.snapshots;
    const stuck = oldest?.['manifest-list'] as string;
    const remove = t.store.delete.bind(t.store);
    t.store.delete = async (uri: string) => {
      if (uri === stuck) throw new Error(`AccessDenied: DeleteObject ${uri}`);
      return remove(uri);
    };

    const result = await expireSnapshots(t.deps, { table: ident, olderThanMs: t.now() + 1, retainLast: 1 });

    expect(result).toMatchObject({ deletedManifestLists: 1, failedDeletes: [stuck] });
    expect(await t.store.head(stuck)).toBeDefined();
    expect((await loadTable(t.deps, ident)).metadata.snapshots).toHaveLength(1);
  });

  it("stops before deleting anything when a kept snapshot's files cannot be read", async () => {
    const t = await ticksTable();
    for (let h = 0; h < 3; h++) await t.append('2024-01-01', h, ['A']);
    const { metadata } = await loadTable(t.deps, ident);
    const current = metadata.snapshots.at(-1);
    if (!current) throw new Error('expected snapshots');
    // The current snapshot's manifest list is unreadable (a lost object, a store answering 404 for a
    // while): what it keeps is unknown, so the files of expired snapshots may all still be read.
    await t.store.delete(current['manifest-list']);
    const files = [...t.store.objects.keys()].filter((k) => k.endsWith('.parquet')).sort();

    const error = await errorOf(expireSnapshots(t.deps, { table: ident, olderThanMs: t.now() + 1 }));
    expect(error).toBeDefined();
    expect([...t.store.objects.keys()].filter((k) => k.endsWith('.parquet')).sort()).toEqual(files);
  });

  it('with nothing old enough, commits nothing; refuses retainLast below 1 and a cutoff that is no instant', async () => {
    const t = await ticksTable();
    await t.append('2024-01-01', 0, ['A']);
    const before = await loadTable(t.deps, ident);
    const result = await expireSnapshots(t.deps, { table: ident, olderThanMs: T0 });
    expect(result).toEqual({
      expiredSnapshotIds: [],
      retainedSnapshots: 1,
      deletedManifestLists: 0,
      deletedManifests: 0,
      deletedDataFiles: 0,
      failedDeletes: [],
      metadataLocation: before.metadataLocation,
      attempts: 0,
    });
    const error = await errorOf(expireSnapshots(t.deps, { table: ident, olderThanMs: T0, retainLast: 0 }));
    expect(error).toBeInstanceOf(InputError);
    expect(error?.message).toMatch(/retainLast must be .* at least 1.*got 0/);
    expect((error as InputError).details).toEqual({ retainLast: 0 });
    const notInstant = await errorOf(expireSnapshots(t.deps, { table: ident, olderThanMs: Number.NaN }));
    expect(notInstant).toBeInstanceOf(InputError);
    expect(notInstant?.message).toContain('olderThanMs must be an instant in epoch milliseconds, got NaN');
    expect((notInstant as InputError).details).toEqual({ olderThanMs: Number.NaN });
    expect((await loadTable(t.deps, ident)).metadataLocation).toBe(before.metadataLocation);
  });

  it('a table no offload ever wrote (only other engines commit to it) still expires past retainLast', async () => {
    const t = await ticksTable();
    for (let h = 0; h < 3; h++) await t.append('2024-01-01', h, ['A']);
    const { metadata } = await loadTable(t.deps, ident);
    const unmarked = {
      ...metadata,
      snapshots: metadata.snapshots.map((s) => ({ ...s, summary: { operation: 'append' } })),
    };
    const ids = metadata.snapshots.map((s) => s['snapshot-id']);
    expect([...snapshotsToExpire(unmarked, { olderThanMs: t.now() + 1, retainLast: 1 })]).toEqual(
      ids.slice(0, -1),
    );
  });

  it("goes on when an expired snapshot's manifest list is already gone (another engine's cleanup)", async () => {
    const t = await ticksTable();
    for (let h = 0; h < 3; h++) await t.append('2024-01-01', h, ['A']);
    const { metadata } = await loadTable(t.deps, ident);
    const [oldest, middle] = metadata.snapshots;
    await t.store.delete(oldest?.['manifest-list'] as string);
    const result = await expireSnapshots(t.deps, { table: ident, olderThanMs: t.now() + 1, retainLast: 1 });
    expect(result.expiredSnapshotIds).toEqual([oldest?.['snapshot-id'], middle?.['snapshot-id']]);
    // Deleting what is already gone succeeds, as S3's DeleteObject does.
    expect(result).toMatchObject({ deletedManifestLists: 2, failedDeletes: [] });
    expect(await t.store.head(middle?.['manifest-list'] as string)).toBeUndefined();
  });

  it('snapshotsToExpire keeps every ref head and the young, whatever retainLast says', async () => {
    const t = await ticksTable();
    for (let h = 0; h < 4; h++) await t.append('2024-01-01', h, ['A']);
    const { metadata } = await loadTable(t.deps, ident);
    const ids = metadata.snapshots.map((s) => s['snapshot-id']);
    const tagged = {
      ...metadata,
      refs: { ...metadata.refs, audit: { 'snapshot-id': ids[0]!, type: 'tag' as const } },
    };
    expect([...snapshotsToExpire(tagged, { olderThanMs: T0 + 3 * HOUR, retainLast: 1 })]).toEqual([ids[1]]);
    expect([...snapshotsToExpire(metadata, { olderThanMs: T0 + 10 * HOUR, retainLast: 2 })]).toEqual(
      ids.slice(0, 2),
    );
  });

  it('a gap in the snapshot log drops the history before it: no timestamp reads the wrong snapshot', async () => {
    const t = await ticksTable();
    for (let h = 0; h < 4; h++) await t.append('2024-01-01', h, ['A']);
    const { metadataLocation, metadata } = await loadTable(t.deps, ident);
    const ids = metadata.snapshots.map((s) => s['snapshot-id']);
    // A tag keeps the first snapshot; the second and third expire, the fourth is current.
    const tagged = {
      ...metadata,
      refs: { ...metadata.refs, audit: { 'snapshot-id': ids[0]!, type: 'tag' as const } },
    };
    const target = `${location}/metadata/tagged.metadata.json`;
    await t.store.put(target, new TextEncoder().encode(serializeTableMetadata(tagged)));
    await t.deps.catalog.swapMetadataLocation(ident, metadataLocation, target);

    const result = await expireSnapshots(t.deps, { table: ident, olderThanMs: T0 + 3 * HOUR + 1 });
    expect(result.expiredSnapshotIds).toEqual([ids[1], ids[2]]);
    const after = (await loadTable(t.deps, ident)).metadata;
    expect(after.snapshots.map((s) => s['snapshot-id'])).toEqual([ids[0], ids[3]]);
    expect(after['snapshot-log'].map((e) => e['snapshot-id'])).toEqual([ids[3]]);
  });

  it('keeps the data files a kept snapshot names the way Hadoop writes local paths (file:/x), though the expired ones name them file:///x', async () => {
    const at = 'file:///warehouse/test/ticks';
    const t = await ticksTable(new MemoryCatalog(), at);
    for (let h = 0; h < 2; h++) await t.append('2024-01-01', h, ['A', 'B']);
    const rows = await t.ids();
    // Another engine (Spark with Hadoop's local file system) rewrites the manifests: the same files,
    // each named file:/warehouse/... as Hadoop prints a local path.
    await t.foreignCommit(async ({ metadata, parent, snapshotId, sequenceNumber }) => {
      const manifests = [];
      const lists = readManifestList(await t.store.get(parent['manifest-list']), parent['manifest-list']);
      for (const [i, m] of lists.entries()) {
        const { entries } = readManifest(await t.store.get(m.manifest_path), m.manifest_path);
        manifests.push(
          await putManifest(t.store, {
            uri: `${at}/metadata/hadoop-${i}-m0.avro`,
            schema: currentSchema(metadata),
            spec: metadata['partition-specs'].find((p) => p['spec-id'] === m.partition_spec_id)!,
            entries: entries.map((e) => ({
              status: ENTRY_STATUS.existing,
              snapshot_id: e.snapshot_id ?? m.added_snapshot_id,
              sequence_number: e.sequence_number ?? m.sequence_number,
              file_sequence_number: e.file_sequence_number ?? m.sequence_number,
              data_file: { ...e.data_file, file_path: e.data_file.file_path.replace('file:///', 'file:/') },
            })),
            snapshotId,
            sequenceNumber,
          }),
        );
      }
      const manifestList = `${at}/metadata/snap-hadoop.avro`;
      await t.store.put(
        manifestList,
        writeManifestList({ snapshotId, parentSnapshotId: parent['snapshot-id'], sequenceNumber, manifests }),
      );
      // The parent's summary, its offload marker included: the marker chain needs no older snapshot.
      return { manifestList, summary: { ...parent.summary, operation: 'replace' } };
    });

    const result = await expireSnapshots(t.deps, { table: ident, olderThanMs: t.now() + 1, retainLast: 1 });

    expect(result).toMatchObject({ retainedSnapshots: 1, deletedDataFiles: 0, deletedManifestLists: 2 });
    for (const uri of t.rowsOf.keys()) expect(await t.store.head(uri)).toBeDefined();
    const live = await liveDataFiles(t.store, (await loadTable(t.deps, ident)).metadata);
    expect(live.map((f) => f.file.file_path).sort()).toEqual(
      [...t.rowsOf.keys()].map((uri) => uri.replace('file:///', 'file:/')).sort(),
    );
    expect(live.reduce((n, f) => n + f.file.record_count, 0)).toBe(rows.length);
  });
});
