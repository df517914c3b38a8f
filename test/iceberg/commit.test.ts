import { describe, expect, it } from 'vitest';
import { CommitConflictError, InputError, SchemaDriftError } from '../../src/errors.ts';
import type { Catalog, TableIdent } from '../../src/iceberg/catalog.ts';
import { fastAppend } from '../../src/iceberg/commit.ts';
import { readManifest } from '../../src/iceberg/manifest.ts';
import { readManifestList } from '../../src/iceberg/manifest-list.ts';
import { MemoryCatalog } from '../../src/iceberg/memory-catalog.ts';
import { MemoryObjectStore } from '../../src/iceberg/memory-store.ts';
import { createTable, findMarker, liveDataFiles, loadTable, newestMarker } from '../../src/iceberg/table.ts';
import { fromBytes } from '../../src/iceberg/values.ts';
import { makeBatch } from '../../src/plan/batch.ts';
import { withReadBudget } from './catalog-budget.ts';
import { dayMicros, ticks, ticksConfig, ticksParquet } from './parquet-fixtures.ts';

const ident: TableIdent = { namespace: 'test', name: 'ticks' };
const location = 'mem://warehouse/test/ticks';

/** A seeded byte source so ids and names are reproducible. */
function seeded(seed = 1) {
  let x = seed;
  return (n: number) =>
    Uint8Array.from({ length: n }, () => {
      x = (x * 1103515245 + 12345) % 2 ** 31;
      return x & 0xff;
    });
}

async function setup(config = ticksConfig(), given: Catalog = new MemoryCatalog()) {
  const catalog = withReadBudget(given);
  const store = new MemoryObjectStore();
  let now = 1_700_000_000_000;
  const deps = { store, catalog, clock: () => (now += 1000), random: seeded(), sleep: async () => {} };
  await createTable(deps, { table: ident, config, location });
  const stage = async (name: string, rows: ReturnType<typeof ticks>, options = {}) => {
    const uri = `${location}/data/${name}.parquet`;
    await store.put(uri, ticksParquet(rows, options));
    return uri;
  };
  const batch = (day: string, rows: number) => ({
    ...makeBatch('ticks', `${day}T00:00:00Z`, `${day}T01:00:00Z`),
    rows,
  });
  return { store, catalog, deps, stage, batch };
}

const errorOf = async (p: Promise<unknown>) =>
  p.then(
    () => undefined,
    (e: unknown) => e as Error,
  );

describe('fast append', () => {
  it('commits one snapshot with the marker, standard summary, manifest list and manifest', async () => {
    const { deps, stage, batch, store } = await setup();
    const a = await stage('a', ticks(10, '2024-01-01', 'A'));
    const b = await stage('b', ticks(5, '2024-01-01', 'B', 100n));
    const marker = batch('2024-01-01', 15);
    const result = await fastAppend(deps, { table: ident, marker, files: [a, b] });

    expect(result).toMatchObject({ status: 'committed', attempts: 1 });
    expect(result.metadataLocation).toMatch(
      /^mem:\/\/warehouse\/test\/ticks\/metadata\/00001-[0-9a-f-]{36}\.metadata\.json$/,
    );
    const { metadata } = await loadTable(deps, ident);
    const [snapshot] = metadata.snapshots;
    expect(snapshot?.summary).toEqual({
      operation: 'append',
      'added-data-files': '2',
      'added-records': '15',
      'added-files-size': String((await store.head(a))!.size + (await store.head(b))!.size),
      'changed-partition-count': '2',
      'total-records': '15',
      'total-files-size': expect.stringMatching(/^\d+$/),
      'total-data-files': '2',
      'total-delete-files': '0',
      'total-position-deletes': '0',
      'total-equality-deletes': '0',
      'k2.offload.batch-id': marker.batchId,
      'k2.offload.table': 'ticks',
      'k2.offload.window-start': '2024-01-01T00:00:00.000Z',
      'k2.offload.window-end': '2024-01-01T01:00:00.000Z',
      'k2.offload.rows': '15',
    });
    expect(metadata['last-sequence-number']).toBe(1n);
    expect(metadata.refs.main).toEqual({ 'snapshot-id': snapshot?.['snapshot-id'], type: 'branch' });
    expect(metadata['metadata-log']).toHaveLength(1);

    const [list] = readManifestList(await store.get(snapshot!['manifest-list']));
    expect(list).toMatchObject({
      sequence_number: 1n,
      added_files_count: 2,
      added_rows_count: 15,
      partition_spec_id: 0,
    });
    const day = Number(dayMicros('2024-01-01') / 86_400_000_000n);
    const [days, syms] = list?.partitions ?? [];
    expect([
      days?.contains_null,
      fromBytes('int', days!.lower_bound!),
      fromBytes('int', days!.upper_bound!),
    ]).toEqual([false, day, day]);
    expect([fromBytes('string', syms!.lower_bound!), fromBytes('string', syms!.upper_bound!)]).toEqual([
      'A',
      'B',
    ]);

    const manifest = readManifest(await store.get(list!.manifest_path));
    expect(manifest.metadata).toMatchObject({
      'format-version': '2',
      content: 'data',
      'partition-spec-id': '0',
    });
    const file = manifest.entries.find((e) => e.data_file.file_path === a)!;
    expect(file).toMatchObject({ status: 1, snapshot_id: snapshot?.['snapshot-id'], sequence_number: null });
    const f = file.data_file;
    expect(f.partition).toEqual({ ts_day: day, sym: 'A' });
    expect(f.record_count).toBe(10);
    // Field ids: id 1, ts 2, sym 3, px 4, qty 5, tags 6 with element 7.
    expect(Object.fromEntries(f.value_counts!)).toEqual({ 1: 10, 2: 10, 3: 10, 4: 10, 5: 10, 7: 15 });
    expect(f.null_value_counts?.get(5)).toBe(4);
    expect(fromBytes('long', f.lower_bounds!.get(1)!)).toBe(1n);
    expect(fromBytes('long', f.upper_bounds!.get(1)!)).toBe(10n);
    expect(fromBytes('timestamptz', f.upper_bounds!.get(2)!)).toBe(dayMicros('2024-01-01') + 9_000_000n);
    expect(fromBytes('decimal(18, 4)', f.upper_bounds!.get(4)!)).toBe(1_000_009n);
    expect(fromBytes('int', f.lower_bounds!.get(5)!)).toBe(1);
    expect(f.lower_bounds?.has(7)).toBe(false); // no bounds inside lists
    expect([...f.column_sizes!.keys()].sort()).toEqual([1, 2, 3, 4, 5, 7]);
  });

  it('appending the same batch twice writes one snapshot and nothing else', async () => {
    const { deps, stage, batch, store } = await setup();
    const a = await stage('a', ticks(3, '2024-01-01', 'A'));
    const first = await fastAppend(deps, { table: ident, marker: batch('2024-01-01', 3), files: [a] });
    const objects = store.objects.size;
    const again = await fastAppend(deps, { table: ident, marker: batch('2024-01-01', 3), files: [a] });
    expect(again.status).toBe('already-committed');
    expect(again.marker).toEqual(first.marker);
    expect(again.metadataLocation).toBe(first.metadataLocation);
    expect(store.objects.size).toBe(objects);
    expect((await loadTable(deps, ident)).metadata.snapshots).toHaveLength(1);
  });

  it('two appends of the same batch at once commit it once', async () => {
    const { deps, stage, batch } = await setup();
    const a = await stage('a', ticks(3, '2024-01-01', 'A'));
    const results = await Promise.all(
      [1, 2].map(() => fastAppend(deps, { table: ident, marker: batch('2024-01-01', 3), files: [a] })),
    );
    expect(results.map((r) => r.status).sort()).toEqual(['already-committed', 'committed']);
    expect((await loadTable(deps, ident)).metadata.snapshots).toHaveLength(1);
  });

  it('finds markers along the main branch ancestry; newest first', async () => {
    const { deps, stage, batch } = await setup();
    const days = ['2024-01-01', '2024-01-02', '2024-01-03'];
    for (const day of days)
      await fastAppend(deps, {
        table: ident,
        marker: batch(day, 2),
        files: [await stage(day, ticks(2, day, 'A'))],
      });
    const { metadata } = await loadTable(deps, ident);
    const ids = days.map((d) => findMarker(metadata, batch(d, 2).batchId));
    expect(ids.map((m) => m?.windowStart)).toEqual(days.map((d) => `${d}T00:00:00.000Z`));
    expect(ids.map((m) => m?.sequenceNumber)).toEqual([1n, 2n, 3n]);
    expect(newestMarker(metadata)?.batchId).toBe(batch('2024-01-03', 2).batchId);
    // Rolled back to the first snapshot: later markers are no longer on main.
    const first = ids[0]!.snapshotId;
    const rolledBack = {
      ...metadata,
      'current-snapshot-id': first,
      refs: { main: { 'snapshot-id': first, type: 'branch' as const } },
    };
    expect(findMarker(rolledBack, batch('2024-01-03', 2).batchId)).toBeUndefined();
    expect(newestMarker(rolledBack)?.batchId).toBe(batch('2024-01-01', 2).batchId);
    expect(findMarker(metadata, 'no-such-batch')).toBeUndefined();
  });

  it('a lost race is rebuilt on the new metadata: both snapshots survive, in order', async () => {
    const inner = new MemoryCatalog();
    let interfere: (() => Promise<unknown>) | undefined;
    const racing: Catalog = Object.assign(Object.create(inner) as Catalog, {
      async swapMetadataLocation(t: TableIdent, expected: string, next: string) {
        const other = interfere;
        interfere = undefined;
        if (other) await other(); // another writer commits between our load and our swap
        return inner.swapMetadataLocation(t, expected, next);
      },
    });
    const { deps, stage, batch, store } = await setup(ticksConfig(), racing);
    const mine = await stage('mine', ticks(4, '2024-01-01', 'A'));
    const theirs = await stage('theirs', ticks(6, '2024-01-02', 'A'));
    interfere = () =>
      fastAppend(
        { ...deps, catalog: inner },
        { table: ident, marker: batch('2024-01-02', 6), files: [theirs] },
      );
    const result = await fastAppend(deps, { table: ident, marker: batch('2024-01-01', 4), files: [mine] });

    expect(result).toMatchObject({ status: 'committed', attempts: 2 });
    const { metadata } = await loadTable(deps, ident);
    const [their, our] = metadata.snapshots;
    expect(our?.['parent-snapshot-id']).toBe(their?.['snapshot-id']);
    expect([their?.['sequence-number'], our?.['sequence-number']]).toEqual([1n, 2n]);
    expect(our?.summary['total-records']).toBe('10');
    const live = await liveDataFiles(store, metadata);
    expect(live.map((f) => [f.file.file_path, f.sequenceNumber]).sort()).toEqual([
      [mine, 2n],
      [theirs, 1n],
    ]);
    // The first attempt's manifest list was removed; only committed lists remain.
    const lists = [...store.objects.keys()].filter((k) => k.includes('/snap-'));
    expect(lists.sort()).toEqual(metadata.snapshots.map((s) => s['manifest-list']).sort());
  });

  it('gives up after the configured attempts with a retryable CommitConflictError', async () => {
    const inner = new MemoryCatalog();
    const hostile: Catalog = Object.assign(Object.create(inner) as Catalog, {
      async swapMetadataLocation() {
        throw new CommitConflictError('changed underneath');
      },
    });
    const { deps, stage, batch } = await setup(ticksConfig(), hostile);
    const a = await stage('a', ticks(1, '2024-01-01', 'A'));
    const error = await errorOf(
      fastAppend({ ...deps, maxAttempts: 3 }, { table: ident, marker: batch('2024-01-01', 1), files: [a] }),
    );
    expect(error).toBeInstanceOf(CommitConflictError);
    expect(error?.message).toBe(
      'append to test.ticks lost 3 races for the catalog in a row; retry the commit step',
    );
    expect((error as CommitConflictError).retryable).toBe(true);
    // What the JSON output and the logs carry: the batch, the attempts, the last race lost.
    expect((error as CommitConflictError).details).toEqual({
      table: 'test.ticks',
      batchId: batch('2024-01-01', 1).batchId,
      attempts: 3,
    });
    expect((error as CommitConflictError).cause).toEqual(new CommitConflictError('changed underneath'));
  });

  it('refuses a batch whose files hold another row count than it says', async () => {
    const { deps, stage, batch } = await setup();
    const a = await stage('a', ticks(3, '2024-01-01', 'A'));
    const marker = batch('2024-01-01', 4);
    const error = await errorOf(fastAppend(deps, { table: ident, marker, files: [a] }));
    expect(error).toBeInstanceOf(InputError);
    expect(error?.message).toBe(
      `batch ${marker.batchId} of test.ticks: the staged files hold 3 rows, the batch says 4; stage the batch again`,
    );
  });

  it('refuses a file that spans two partitions, naming both values', async () => {
    const { deps, stage, batch } = await setup();
    const mixed = await stage('mixed', [...ticks(2, '2024-01-01', 'A'), ...ticks(2, '2024-01-02', 'A', 10n)]);
    const error = await errorOf(
      fastAppend(deps, { table: ident, marker: batch('2024-01-01', 4), files: [mixed] }),
    );
    expect(error).toBeInstanceOf(InputError);
    expect(error?.message).toBe(
      `data file ${mixed} holds rows of more than one partition: ts_day is 19723 and 19724; stage one file per partition`,
    );
  });

  it('computes bucket and truncate partitions from the rows, and refuses a file spanning buckets', async () => {
    const config = ticksConfig([
      { column: 'id', transform: 'bucket[4]' },
      { column: 'sym', transform: 'truncate[2]' },
    ]);
    const { deps, stage, batch, store } = await setup(config);
    // bucket[4] of longs 34 and 38 (spec vector hash of 34 is 2017239379 -> bucket 3)
    const rows = [34n, 38n].map((id) => ({ ...ticks(1, '2024-01-01', 'ABC')[0]!, id }));
    const { applyTransform, parseTransform } = await import('../../src/iceberg/transforms.ts');
    const bucket = (id: bigint) => applyTransform(parseTransform('bucket[4]'), 'long', id);
    expect(bucket(34n)).toBe(3);
    const same = rows.filter((r) => bucket(r.id) === 3);
    const uri = await stage('b3', same);
    await fastAppend(deps, { table: ident, marker: batch('2024-01-01', same.length), files: [uri] });
    const [live] = await liveDataFiles(store, (await loadTable(deps, ident)).metadata);
    expect(live?.file.partition).toEqual({ id_bucket: 3, sym_trunc: 'AB' });

    const spanning = await stage('span', [
      { ...rows[0]!, id: 34n },
      { ...rows[0]!, id: 35n },
    ]);
    const error = await errorOf(
      fastAppend(deps, { table: ident, marker: batch('2024-01-02', 2), files: [spanning] }),
    );
    expect(error?.message).toMatch(/holds rows of more than one partition: id_bucket is 3 and \d/);
  });

  it('resolves columns by Parquet field ids before names, and refuses files missing a required column', async () => {
    const { deps, stage, batch, store } = await setup();
    const renamed = await stage('renamed', ticks(3, '2024-01-01', 'A'), {
      fieldIds: true,
      rename: { sym: 'symbol_v1' },
    });
    await fastAppend(deps, { table: ident, marker: batch('2024-01-01', 3), files: [renamed] });
    const [live] = await liveDataFiles(store, (await loadTable(deps, ident)).metadata);
    expect(live?.file.partition).toEqual({ ts_day: 19723, sym: 'A' });

    const missing = await stage('missing', ticks(3, '2024-01-02', 'A'), { omit: ['px'] });
    const error = await errorOf(
      fastAppend(deps, { table: ident, marker: batch('2024-01-02', 3), files: [missing] }),
    );
    expect(error).toBeInstanceOf(SchemaDriftError);
    expect(error?.message).toBe(
      `data file ${missing}: required column px (field id 4) is missing from the file`,
    );
  });

  it('needs no statistics: partition values then come from the rows', async () => {
    const { deps, stage, batch, store } = await setup();
    const plain = await stage('plain', ticks(5, '2024-01-01', 'Z'), { statistics: false });
    await fastAppend(deps, { table: ident, marker: batch('2024-01-01', 5), files: [plain] });
    const [live] = await liveDataFiles(store, (await loadTable(deps, ident)).metadata);
    expect(live?.file.partition).toEqual({ ts_day: 19723, sym: 'Z' });
    expect(live?.file.lower_bounds?.size).toBe(0);
  });
});

describe('create table', () => {
  it('returns an existing table as it is, whatever the config: bringing it to the config is evolveTable', async () => {
    const { deps } = await setup();
    const before = await loadTable(deps, ident);
    const again = await createTable(deps, { table: ident, config: ticksConfig(), location });
    expect(again).toEqual({ ...before, created: false });
    const other = ticksConfig([{ column: 'ts', transform: 'month' }]);
    const unchanged = await createTable(deps, { table: ident, config: other, location });
    expect(unchanged).toEqual({ ...before, created: false });
  });

  it('two creates at once: one creates, the other finds the same table', async () => {
    const store = new MemoryObjectStore();
    const catalog = new MemoryCatalog();
    const results = await Promise.all(
      [1, 2].map((s) =>
        createTable({ store, catalog, random: seeded(s) }, { table: ident, config: ticksConfig(), location }),
      ),
    );
    expect(results.map((r) => r.created).sort()).toEqual([false, true]);
    const metadataFiles = [...store.objects.keys()].filter((k) => k.endsWith('.metadata.json'));
    expect(metadataFiles).toEqual([await catalog.currentMetadataLocation(ident)]);
  });
});
