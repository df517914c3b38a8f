import { describe, expect, it } from 'vitest';
import { InputError } from '../../../src/errors.ts';
import { fastAppend } from '../../../src/iceberg/commit.ts';
import {
  compactTable,
  DEFAULT_ORPHAN_GRACE_MS,
  expireSnapshots,
  removeOrphanFiles,
} from '../../../src/iceberg/maintenance/index.ts';
import type { ObjectStore } from '../../../src/iceberg/object-store.ts';
import { liveDataFiles, loadTable } from '../../../src/iceberg/table.ts';
import { makeBatch } from '../../../src/plan/batch.ts';
import { ticks, ticksParquet } from '../parquet-fixtures.ts';
import { HOUR, ident, location, ticksTable } from './support.ts';

const DAY = 24 * HOUR;

describe('remove orphan files', () => {
  it('deletes unreferenced files older than the grace period; keeps young ones and everything referenced', async () => {
    const t = await ticksTable();
    for (let h = 0; h < 3; h++) await t.append('2024-01-01', h, ['A', 'B']);
    await compactTable(t.deps, { table: ident, rewriter: t.rewriter, targetFileRows: 100 });
    // Left behind by a crashed writer: a data file, a manifest list, a metadata file.
    const crashed = [
      `${location}/data/crashed.parquet`,
      `${location}/metadata/snap-1-1-crashed.avro`,
      `${location}/metadata/00042-crashed.metadata.json`,
    ];
    for (const uri of crashed) await t.store.put(uri, new Uint8Array([1]));
    await t.store.put(`${location}/metadata/version-hint.text`, new TextEncoder().encode('1'));
    t.advance(4 * DAY);
    const young = `${location}/data/in-flight.parquet`;
    await t.store.put(young, new Uint8Array([2]));
    const olderThanMs = t.now() - DEFAULT_ORPHAN_GRACE_MS;

    const dry = await removeOrphanFiles(t.deps, { table: ident, olderThanMs, dryRun: true });
    expect(dry).toMatchObject({ orphans: [...crashed].sort(), deleted: 0, failedDeletes: [], young: 1 });
    for (const uri of crashed) expect(await t.store.head(uri)).toBeDefined();

    const result = await removeOrphanFiles(t.deps, { table: ident, olderThanMs });
    expect(result).toMatchObject({ orphans: [...crashed].sort(), deleted: 3, young: 1, failedDeletes: [] });
    for (const uri of crashed) expect(await t.store.head(uri)).toBeUndefined();
    expect(await t.store.head(young)).toBeDefined();

    // Every snapshot is still fully readable, time travel included: nothing referenced went.
    const { metadata } = await loadTable(t.deps, ident);
    for (const s of metadata.snapshots)
      for (const f of await liveDataFiles(t.store, metadata, s['snapshot-id']))
        expect(await t.store.head(f.file.file_path)).toBeDefined();
    for (const e of metadata['metadata-log']) expect(await t.store.head(e['metadata-file'])).toBeDefined();
    expect(await t.store.head(`${location}/metadata/version-hint.text`)).toBeDefined();
    expect(await t.ids()).toHaveLength(18);
  });

  it('after expiry, the files only expired snapshots used are orphans no more: expiry already removed them', async () => {
    const t = await ticksTable();
    for (let h = 0; h < 3; h++) await t.append('2024-01-01', h, ['A']);
    await compactTable(t.deps, { table: ident, rewriter: t.rewriter, targetFileRows: 100 });
    t.advance(4 * DAY);
    await expireSnapshots(t.deps, { table: ident, olderThanMs: t.now(), retainLast: 1 });
    const result = await removeOrphanFiles(t.deps, { table: ident, olderThanMs: t.now() });
    expect(result.orphans).toEqual([]);
    expect(await t.ids()).toHaveLength(9);
  });

  it('keeps an old file that a commit made during the listing refers to', async () => {
    const t = await ticksTable();
    await t.append('2024-01-01', 0, ['A']);
    // Staged long ago, committed only now: old, yet referenced by the time the listing ends.
    const late = `${location}/data/late.parquet`;
    await t.store.put(late, ticksParquet(ticks(2, '2024-01-02', 'A', 900n)));
    t.advance(4 * DAY);
    let committed = false;
    const listing: ObjectStore = Object.assign(Object.create(t.store) as ObjectStore, {
      async *list(prefix: string) {
        yield* t.store.list(prefix);
        const marker = { ...makeBatch('ticks', '2024-01-02T00:00:00Z', '2024-01-02T01:00:00Z'), rows: 2 };
        await fastAppend(t.deps, { table: ident, marker, files: [late] });
        committed = true;
      },
    });
    const result = await removeOrphanFiles(
      { ...t.deps, store: listing },
      { table: ident, olderThanMs: t.now() },
    );
    expect(committed).toBe(true);
    expect(result.orphans).toEqual([]);
    expect(await t.store.head(late)).toBeDefined();
  });

  it('reports an orphan the store refuses to delete, counts only the ones deleted, and deletes the rest', async () => {
    const t = await ticksTable();
    await t.append('2024-01-01', 0, ['A']);
    const crashed = [`${location}/data/crashed-1.parquet`, `${location}/data/crashed-2.parquet`];
    for (const uri of crashed) await t.store.put(uri, new Uint8Array([1]));
    t.advance(4 * DAY);
    const [stuck, other] = crashed as [string, string];
    const remove = t.store.delete.bind(t.store);
    t.store.delete = async (uri: string) => {
      if (uri === stuck) throw new Error(`AccessDenied: DeleteObject ${uri}`);
      return remove(uri);
    };

    const result = await removeOrphanFiles(t.deps, {
      table: ident,
      olderThanMs: t.now() - DEFAULT_ORPHAN_GRACE_MS,
    });

    expect(result).toMatchObject({ orphans: crashed, deleted: 1, failedDeletes: [stuck] });
    expect(await t.store.head(stuck)).toBeDefined();
    expect(await t.store.head(other)).toBeUndefined();
  });

  it('refuses a cutoff that is not an instant', async () => {
    const t = await ticksTable();
    const refused = removeOrphanFiles(t.deps, { table: ident, olderThanMs: Number.NaN });
    await expect(refused).rejects.toThrow(InputError);
    await expect(refused).rejects.toThrow('olderThanMs must be an instant in epoch milliseconds, got NaN');
    await expect(refused).rejects.toMatchObject({ details: { olderThanMs: Number.NaN } });
  });
});
