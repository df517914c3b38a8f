import { describe, expect, it } from 'vitest';
import { CommitConflictError, InputError, UnavailableError } from '../../../src/errors.ts';
import { dataFileFromParquet } from '../../../src/iceberg/data-file.ts';
import { compactPartition, compactTable, planCompaction } from '../../../src/iceberg/maintenance/index.ts';
import { commitReplace } from '../../../src/iceberg/maintenance/replace.ts';
import { ENTRY_STATUS, readManifest } from '../../../src/iceberg/manifest.ts';
import { readManifestList } from '../../../src/iceberg/manifest-list.ts';
import { currentSchema, currentSnapshot } from '../../../src/iceberg/metadata.ts';
import { mappingOf } from '../../../src/iceberg/snapshot-update.ts';
import {
  findMarker,
  liveDataFiles,
  loadTable,
  newestMarker,
  newSnapshotId,
} from '../../../src/iceberg/table.ts';
import { dayMicros, ticksParquet } from '../parquet-fixtures.ts';
import { ident, racingCatalog, ticksTable } from './support.ts';

const day = (iso: string) => Number(dayMicros(iso) / 86_400_000_000n);
const errorOf = (p: Promise<unknown>) =>
  p.then(
    () => undefined,
    (e: unknown) => e as Error,
  );

async function liveFiles(t: Awaited<ReturnType<typeof ticksTable>>) {
  const { metadata } = await loadTable(t.deps, ident);
  return liveDataFiles(t.store, metadata);
}

describe('compaction', () => {
  it('plans partitions with at least minFiles small files; large files stay out', async () => {
    const t = await ticksTable();
    await t.append('2024-01-01', 0, ['A', 'B']);
    await t.append('2024-01-01', 1, ['A']);
    await t.append('2024-01-01', 2, ['A'], 50);
    await t.append('2024-01-02', 0, ['A']);
    const groups = planCompaction(await liveFiles(t), { targetFileRows: 10, minFiles: 2 });
    expect(groups.map((g) => [g.partition, g.files.length])).toEqual([
      [{ ts_day: day('2024-01-01'), sym: 'A' }, 2],
    ]);
    expect(planCompaction(await liveFiles(t), { targetFileRows: 100, minFiles: 3 })).toHaveLength(1);
    // A file of exactly the target size is not small (every file here holds 3 rows, or 50).
    expect(planCompaction(await liveFiles(t), { targetFileRows: 3, minFiles: 2 })).toEqual([]);
    expect(() => planCompaction([], { targetFileRows: 10, minFiles: 1 })).toThrow(
      /minFiles must be .* at least 2.*got 1/,
    );
    expect(() => planCompaction([], { targetFileRows: 10, minFiles: 1 })).toThrow(
      expect.objectContaining({ details: { minFiles: 1 } }),
    );
    expect(() => planCompaction([], { targetFileRows: 0 })).toThrow(/targetFileRows must be .*got 0/);
    expect(() => planCompaction([], { targetFileRows: 0 })).toThrow(
      expect.objectContaining({ details: { targetFileRows: 0 } }),
    );
    expect(planCompaction(await liveFiles(t), { targetFileRows: 1 })).toEqual([]);
  });

  it('replaces small files per partition in one snapshot: same rows, fewer files, totals right, marker kept', async () => {
    const t = await ticksTable();
    for (let h = 0; h < 3; h++) await t.append('2024-01-01', h, ['A', 'B']);
    const last = await t.append('2024-01-02', 0, ['A']);
    const before = await loadTable(t.deps, ident);
    const rows = await t.ids();

    const result = await compactTable(t.deps, { table: ident, rewriter: t.rewriter, targetFileRows: 100 });

    expect(result).toMatchObject({
      status: 'compacted',
      partitions: 2,
      removedFiles: 6,
      addedFiles: 2,
      rows: 18,
    });
    const { metadata } = await loadTable(t.deps, ident);
    expect(metadata.snapshots).toHaveLength(before.metadata.snapshots.length + 1);
    expect(await t.ids()).toEqual(rows);
    const live = await liveFiles(t);
    expect(live).toHaveLength(3);
    const snapshot = currentSnapshot(metadata)!;
    const parent = currentSnapshot(before.metadata)!;
    expect(snapshot.summary).toMatchObject({
      operation: 'replace',
      'added-data-files': '2',
      'deleted-data-files': '6',
      'added-records': '18',
      'deleted-records': '18',
      'changed-partition-count': '2',
      'total-records': parent.summary['total-records'],
      'total-data-files': '3',
    });
    expect(Number(snapshot.summary['total-files-size'])).toBe(
      live.reduce((n, f) => n + f.file.file_size_in_bytes, 0),
    );
    // The newest offload marker is carried: reconcile and the watermark check see the same batch.
    expect(newestMarker(metadata)).toMatchObject({
      batchId: last.marker.batchId,
      windowEnd: last.marker.windowEnd,
      rows: 3,
      snapshotId: result.snapshotId,
    });
    // Earlier batches are still found along the ancestry (their snapshots are kept until expiry).
    expect(findMarker(metadata, newestMarker(before.metadata)!.batchId)).toBeDefined();

    // Manifests: the added files inherit the new sequence number; kept files keep theirs.
    const list = readManifestList(await t.store.get(snapshot['manifest-list']));
    const entries = (
      await Promise.all(list.map(async (m) => readManifest(await t.store.get(m.manifest_path)).entries))
    ).flat();
    expect(entries.filter((e) => e.status === 2)).toHaveLength(6);
    expect(entries.filter((e) => e.status === 2).every((e) => e.snapshot_id === result.snapshotId)).toBe(
      true,
    );
    expect(live.map((f) => f.sequenceNumber).sort()).toEqual([4n, 5n, 5n]);
    // Time travel to the parent still reads the small files.
    expect(await t.ids(parent['snapshot-id'])).toEqual(rows);
  });

  it('compacts one partition only when asked', async () => {
    const t = await ticksTable();
    for (let h = 0; h < 2; h++) await t.append('2024-01-01', h, ['A', 'B']);
    const result = await compactPartition(t.deps, {
      table: ident,
      partition: { ts_day: day('2024-01-01'), sym: 'B' },
      rewriter: t.rewriter,
      targetFileRows: 100,
    });
    expect(result).toMatchObject({ status: 'compacted', partitions: 1, removedFiles: 2 });
    expect((await liveFiles(t)).map((f) => f.file.partition.sym).sort()).toEqual(['A', 'A', 'B']);
  });

  it('compacts a partition of the spec asked for, and nothing when its files were written under another', async () => {
    const t = await ticksTable();
    for (let h = 0; h < 2; h++) await t.append('2024-01-01', h, ['A']);
    const job = {
      table: ident,
      partition: { ts_day: day('2024-01-01'), sym: 'A' },
      rewriter: t.rewriter,
      targetFileRows: 100,
    };
    const other = await compactPartition(t.deps, { ...job, specId: 1 });
    expect(other).toMatchObject({ status: 'nothing-to-compact', partitions: 0 });
    expect(await liveFiles(t)).toHaveLength(2);

    const result = await compactPartition(t.deps, { ...job, specId: 0 });
    expect(result).toMatchObject({ status: 'compacted', partitions: 1, removedFiles: 2 });
    expect(await liveFiles(t)).toHaveLength(1);
  });

  it('a lost race against an append is rebuilt: the appended file stays live, the marker moves to the new batch', async () => {
    const { catalog, beforeNextSwap } = racingCatalog();
    const t = await ticksTable(catalog);
    for (let h = 0; h < 3; h++) await t.append('2024-01-01', h, ['A']);
    let appended: Awaited<ReturnType<typeof t.append>> | undefined;
    beforeNextSwap(async () => {
      appended = await t.append('2024-01-01', 3, ['A']);
    });

    const result = await compactTable(t.deps, { table: ident, rewriter: t.rewriter, targetFileRows: 100 });

    expect(result).toMatchObject({ status: 'compacted', attempts: 2, removedFiles: 3 });
    expect(await t.ids()).toHaveLength(12);
    expect(await liveFiles(t)).toHaveLength(2);
    const { metadata } = await loadTable(t.deps, ident);
    expect(newestMarker(metadata)?.batchId).toBe(appended?.marker.batchId);
    // The failed attempt's manifest list and rewritten manifests were removed.
    const lists = [...t.store.objects.keys()].filter((k) => k.includes('/snap-'));
    expect(lists.sort()).toEqual(metadata.snapshots.map((s) => s['manifest-list']).sort());
  });

  it('a retry that lost one partition to another compaction commits only the other: no merged file of the lost one', async () => {
    const { catalog, beforeNextSwap } = racingCatalog();
    const t = await ticksTable(catalog);
    for (let h = 0; h < 2; h++) await t.append('2024-01-01', h, ['A', 'B']);
    const rows = await t.ids();
    beforeNextSwap(() =>
      compactPartition(t.deps, {
        table: ident,
        partition: { ts_day: day('2024-01-01'), sym: 'A' },
        rewriter: t.rewriter,
        targetFileRows: 100,
      }),
    );

    const result = await compactTable(t.deps, { table: ident, rewriter: t.rewriter, targetFileRows: 100 });

    expect(result).toMatchObject({ status: 'compacted', partitions: 1, removedFiles: 2, attempts: 2 });
    expect(await t.ids()).toEqual(rows);
    const live = await liveFiles(t);
    expect(live.map((f) => f.file.partition.sym).sort()).toEqual(['A', 'B']);
    const merged = [...t.store.objects.keys()].filter((k) => k.includes('/compacted-'));
    expect(merged.sort()).toEqual(live.map((f) => f.file.file_path).sort());
  });

  it('drops a group one of whose files another writer rewrote meanwhile, rather than commit its rows twice', async () => {
    const { catalog, beforeNextSwap } = racingCatalog();
    const t = await ticksTable(catalog);
    for (let h = 0; h < 3; h++) await t.append('2024-01-01', h, ['A']);
    const rows = await t.ids();
    beforeNextSwap(async () => {
      // Another writer rewrites one of the three files alone (sorting it, say): same rows, a new file.
      const [one] = await liveFiles(t);
      if (!one) throw new Error('no live file');
      const copy = one.file.file_path.replace(/\.parquet$/, '-sorted.parquet');
      await t.rewriter({ inputs: [one.file.file_path], output: copy, columns: [], sources: [] });
      const { metadata } = await loadTable(t.deps, ident);
      const spec = metadata['partition-specs'].find((p) => p['spec-id'] === one.specId);
      if (!spec) throw new Error(`no spec ${one.specId}`);
      const file = await dataFileFromParquet({
        store: t.store,
        uri: copy,
        schema: currentSchema(metadata),
        spec,
        mapping: mappingOf(metadata),
      });
      const group = { specId: one.specId, partition: one.file.partition, files: [one] };
      await commitReplace(t.deps, {
        table: ident,
        snapshotId: newSnapshotId(t.deps.random),
        random: t.deps.random,
        rewritten: [{ group, file }],
      });
    });

    const result = await compactTable(t.deps, { table: ident, rewriter: t.rewriter, targetFileRows: 100 });

    expect(result).toMatchObject({ status: 'superseded', partitions: 0 });
    expect(await t.ids()).toEqual(rows);
    expect(await liveFiles(t)).toHaveLength(3);
  });

  it("a rewritten manifest names each untouched file's own snapshot and sequence numbers: an existing entry inherits nothing", async () => {
    const t = await ticksTable();
    // Each batch's manifest holds both partitions' files: compacting B rewrites them with A's as existing.
    for (let h = 0; h < 2; h++) await t.append('2024-01-01', h, ['A', 'B']);
    const before = new Map((await liveFiles(t)).map((f) => [f.file.file_path, f]));
    await compactPartition(t.deps, {
      table: ident,
      partition: { ts_day: day('2024-01-01'), sym: 'B' },
      rewriter: t.rewriter,
      targetFileRows: 100,
    });
    const { metadata } = await loadTable(t.deps, ident);
    const list = currentSnapshot(metadata)?.['manifest-list'] as string;
    const existing = [];
    for (const m of readManifestList(await t.store.get(list), list))
      for (const e of readManifest(await t.store.get(m.manifest_path), m.manifest_path).entries)
        if (e.status === ENTRY_STATUS.existing) existing.push(e);
    expect(existing.map((e) => e.data_file.partition.sym)).toEqual(['A', 'A']);
    for (const e of existing) {
      const was = before.get(e.data_file.file_path);
      expect([e.snapshot_id, e.sequence_number, e.file_sequence_number]).toEqual([
        was?.snapshotId,
        was?.sequenceNumber,
        was?.sequenceNumber,
      ]);
    }
  });

  it('a second compaction over a manifest the first rewrote does not bring back the files the first removed', async () => {
    const t = await ticksTable();
    // Each batch's manifest holds both partitions' files.
    for (let h = 0; h < 2; h++) await t.append('2024-01-01', h, ['A', 'B']);
    const rows = await t.ids();
    const partition = (sym: string) => ({ ts_day: day('2024-01-01'), sym });
    const job = { table: ident, rewriter: t.rewriter, targetFileRows: 100 };
    await compactPartition(t.deps, { ...job, partition: partition('B') });
    await compactPartition(t.deps, { ...job, partition: partition('A') });
    expect(await t.ids()).toEqual(rows);
    expect((await liveFiles(t)).map((f) => f.file.file_path)).toEqual([
      expect.stringContaining('/compacted-'),
      expect.stringContaining('/compacted-'),
    ]);
  });

  it('superseded by another compaction of the same files: commits nothing and deletes its merged file', async () => {
    const { catalog, beforeNextSwap } = racingCatalog();
    const t = await ticksTable(catalog);
    for (let h = 0; h < 2; h++) await t.append('2024-01-01', h, ['A']);
    let first: Awaited<ReturnType<typeof compactTable>> | undefined;
    beforeNextSwap(async () => {
      first = await compactTable(t.deps, { table: ident, rewriter: t.rewriter, targetFileRows: 100 });
    });

    const second = await compactTable(t.deps, { table: ident, rewriter: t.rewriter, targetFileRows: 100 });

    expect(first?.status).toBe('compacted');
    expect(second).toMatchObject({ status: 'superseded', partitions: 0, attempts: 2 });
    const merged = [...t.store.objects.keys()].filter((k) => k.includes('/compacted-'));
    expect(merged).toEqual((await liveFiles(t)).map((f) => f.file.file_path));
    expect(await t.ids()).toHaveLength(6);
  });

  it('refuses a rewrite that lost rows, commits nothing, removes the bad file; gives up after maxAttempts', async () => {
    const t = await ticksTable();
    for (let h = 0; h < 2; h++) await t.append('2024-01-01', h, ['A']);
    const before = await loadTable(t.deps, ident);
    const lossy = async (job: { inputs: string[]; output: string; columns: string[] }) =>
      t.rewriter({ ...job, inputs: job.inputs.slice(1) });
    const error = await errorOf(compactTable(t.deps, { table: ident, rewriter: lossy, targetFileRows: 100 }));
    expect(error).toBeInstanceOf(InputError);
    expect(error?.message).toMatch(/wrote 3 rows .* expected 6; nothing was committed/);
    expect((error as InputError).details).toEqual({
      output: expect.stringMatching(/\/compacted-[^/]+\.parquet$/),
      rows: 3,
      expectedRows: 6,
    });
    expect((await loadTable(t.deps, ident)).metadataLocation).toBe(before.metadataLocation);
    expect([...t.store.objects.keys()].filter((k) => k.includes('/compacted-'))).toEqual([]);
    const crashing = async (job: { inputs: string[]; output: string; columns: string[] }) => {
      await t.rewriter(job);
      throw new Error('connection reset after the write');
    };
    expect(
      await errorOf(compactTable(t.deps, { table: ident, rewriter: crashing, targetFileRows: 100 })),
    ).toMatchObject({ message: 'connection reset after the write' });
    expect([...t.store.objects.keys()].filter((k) => k.includes('/compacted-'))).toEqual([]);

    const hostile = Object.assign(Object.create(t.deps.catalog), {
      async swapMetadataLocation() {
        throw new CommitConflictError('always behind');
      },
    });
    const objects = [...t.store.objects.keys()].sort();
    const lost = await errorOf(
      compactTable(
        { ...t.deps, catalog: hostile, maxAttempts: 2 },
        { table: ident, rewriter: t.rewriter, targetFileRows: 100 },
      ),
    );
    expect(lost).toBeInstanceOf(CommitConflictError);
    expect(lost?.message).toMatch(/lost 2 races .* nothing was committed/);
    expect((lost as CommitConflictError).details).toEqual({ table: 'test.ticks', attempts: 2 });
    expect((lost as CommitConflictError).cause).toEqual(new CommitConflictError('always behind'));
    expect([...t.store.objects.keys()].sort()).toEqual(objects);
  });

  it('refuses a rewrite that put the rows in another partition: same count, nothing committed, the file removed', async () => {
    const t = await ticksTable();
    for (let h = 0; h < 2; h++) await t.append('2024-01-01', h, ['A']);
    const before = await loadTable(t.deps, ident);
    // Every row a day later: the count matches, the partition does not.
    const shifted = async ({ inputs, output }: { inputs: string[]; output: string }) => {
      const rows = inputs.flatMap((uri) => t.rowsOf.get(uri) ?? []);
      await t.store.put(output, ticksParquet(rows.map((r) => ({ ...r, ts: r.ts + 86_400_000_000n }))));
    };
    const error = await errorOf(
      compactTable(t.deps, { table: ident, rewriter: shifted, targetFileRows: 100 }),
    );
    expect(error).toBeInstanceOf(InputError);
    expect(error?.message).toMatch(/wrote 6 rows of partition .* expected 6; nothing was committed/);
    expect((await loadTable(t.deps, ident)).metadataLocation).toBe(before.metadataLocation);
    expect([...t.store.objects.keys()].filter((k) => k.includes('/compacted-'))).toEqual([]);
    expect(await t.ids()).toHaveLength(6);
  });

  it('keeps its merged file when the catalog fails after the swap may have landed: the table still reads every row', async () => {
    const t = await ticksTable();
    for (let h = 0; h < 2; h++) await t.append('2024-01-01', h, ['A']);
    const rows = await t.ids();
    // The swap lands, then the answer is lost (a timeout): not a lost race, so nothing is known.
    const timesOut = Object.assign(Object.create(t.deps.catalog), {
      async swapMetadataLocation(table: unknown, expected: string, next: string) {
        await t.deps.catalog.swapMetadataLocation(table as typeof ident, expected, next);
        throw new UnavailableError('the catalog did not answer in 30 s');
      },
    });
    const error = await errorOf(
      compactTable(
        { ...t.deps, catalog: timesOut },
        { table: ident, rewriter: t.rewriter, targetFileRows: 100 },
      ),
    );
    expect(error).toBeInstanceOf(UnavailableError);
    const live = await liveFiles(t);
    expect(live.map((f) => f.file.file_path)).toEqual([expect.stringContaining('/compacted-')]);
    for (const f of live) expect(await t.store.head(f.file.file_path)).toBeDefined();
    expect(await t.ids()).toEqual(rows);
  });

  it('with nothing to compact, or no way to rewrite, says so', async () => {
    const t = await ticksTable();
    await t.append('2024-01-01', 0, ['A', 'B']);
    expect(
      await compactTable(t.deps, { table: ident, rewriter: t.rewriter, targetFileRows: 100 }),
    ).toMatchObject({
      status: 'nothing-to-compact',
      attempts: 0,
    });
    const error = await errorOf(compactTable(t.deps, { table: ident, targetFileRows: 100 }));
    expect(error?.message).toBe('compacting test.ticks needs a ClickHouse client or a rewriter');
    expect((error as InputError).details).toEqual({ table: 'test.ticks' });
  });
});
