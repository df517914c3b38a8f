import { createHash } from 'node:crypto';
import type { Catalog, TableIdent } from '../../../src/iceberg/catalog.ts';
import { fastAppend } from '../../../src/iceberg/commit.ts';
import type { Rewriter } from '../../../src/iceberg/maintenance/index.ts';
import { MemoryCatalog } from '../../../src/iceberg/memory-catalog.ts';
import { MemoryObjectStore } from '../../../src/iceberg/memory-store.ts';
import { currentSnapshot, type Snapshot, type TableMetadata } from '../../../src/iceberg/metadata.ts';
import {
  nextMetadataLocation,
  nextVersion,
  publishMetadata,
  withMainSnapshot,
} from '../../../src/iceberg/snapshot-update.ts';
import { createTable, liveDataFiles, loadTable, newSnapshotId } from '../../../src/iceberg/table.ts';
import { makeBatch } from '../../../src/plan/batch.ts';
import { withReadBudget } from '../catalog-budget.ts';
import { type Tick, ticks, ticksConfig, ticksParquet } from '../parquet-fixtures.ts';

export const ident: TableIdent = { namespace: 'test', name: 'ticks' };
export const location = 'mem://warehouse/test/ticks';
export const HOUR = 3_600_000;
export const T0 = Date.parse('2024-06-01T00:00:00Z');

/** A seeded byte source so ids and names are reproducible (a hash of a counter: no short cycles). */
export function seeded(seed = 1) {
  let counter = 0;
  return (n: number) => {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i += 32) {
      const block = createHash('sha256').update(`${seed}/${counter++}`).digest();
      out.set(block.subarray(0, Math.min(32, n - i)), i);
    }
    return out;
  };
}

/** A catalog that lets a test commit something else just before one of our swaps lands. */
export function racingCatalog(inner = new MemoryCatalog()) {
  const pending: Array<() => Promise<unknown>> = [];
  const catalog: Catalog = Object.assign(Object.create(inner) as Catalog, {
    async swapMetadataLocation(t: TableIdent, expected: string, next: string) {
      const other = pending.shift();
      if (other) await other();
      return inner.swapMetadataLocation(t, expected, next);
    },
  });
  return { catalog, beforeNextSwap: (f: () => Promise<unknown>) => pending.push(f) };
}

/**
 * A table of ticks in memory; time advances one hour per commit, and files stamp it as lastModified.
 * `rowsOf` remembers what each staged file holds, so the test rewriter can merge files exactly.
 */
export async function ticksTable(given: Catalog = new MemoryCatalog(), at = location) {
  const catalog = withReadBudget(given);
  let now = T0;
  const store = new MemoryObjectStore(() => new Date(now));
  const clock = () => now;
  const deps = { store, catalog, clock, random: seeded(), sleep: async () => {} };
  await createTable(deps, { table: ident, config: ticksConfig(), location: at });
  const rowsOf = new Map<string, Tick[]>();
  let n = 0;

  /** One batch (one hour of `day`) with one file per symbol, each of `rows` ticks. */
  const append = async (day: string, hour: number, syms: string[], rows = 3) => {
    now += HOUR;
    const start = `${day}T${String(hour).padStart(2, '0')}:00:00Z`;
    const end = new Date(Date.parse(start) + HOUR).toISOString();
    const files: string[] = [];
    for (const sym of syms) {
      const data = ticks(rows, day, sym, BigInt(++n * 1000));
      const uri = `${at}/data/${n}-${sym}.parquet`;
      await store.put(uri, ticksParquet(data));
      rowsOf.set(uri, data);
      files.push(uri);
    }
    const marker = { ...makeBatch('ticks', start, end), rows: rows * syms.length };
    return fastAppend(deps, { table: ident, marker, files });
  };

  /** Merges files by concatenating the rows the test staged: a second writer we own. */
  const rewriter: Rewriter = async ({ inputs, output }) => {
    const merged = inputs.flatMap((uri) => rowsOf.get(uri) ?? []);
    rowsOf.set(output, merged);
    await store.put(output, ticksParquet(merged));
  };

  /** Ids of the rows the current (or given) snapshot reads, sorted. */
  const ids = async (snapshotId?: bigint) => {
    const { metadata } = await loadTable(deps, ident);
    const files = await liveDataFiles(store, metadata, snapshotId ?? metadata['current-snapshot-id']);
    return files
      .flatMap((f) => (rowsOf.get(f.file.file_path) ?? []).map((t) => t.id))
      .sort((a, b) => (a < b ? -1 : 1));
  };

  /**
   * A commit by another writer: by default the parent's files again and no offload marker (e.g. a
   * rewrite run by another engine); `rewrite` writes its own manifest list and names its summary.
   */
  const foreignCommit = async (
    rewrite?: (commit: {
      metadata: TableMetadata;
      parent: Snapshot;
      snapshotId: bigint;
      sequenceNumber: bigint;
    }) => Promise<{ manifestList: string; summary: Snapshot['summary'] }>,
  ) => {
    now += HOUR;
    const { metadataLocation, metadata } = await loadTable(deps, ident);
    const parent = currentSnapshot(metadata)!;
    const next = nextVersion(metadata, metadataLocation, now);
    const id = newSnapshotId(deps.random);
    const sequenceNumber = metadata['last-sequence-number'] + 1n;
    const own = await rewrite?.({ metadata, parent, snapshotId: id, sequenceNumber });
    const snapshot = {
      ...parent,
      'snapshot-id': id,
      'parent-snapshot-id': parent['snapshot-id'],
      'sequence-number': sequenceNumber,
      'timestamp-ms': now,
      'manifest-list': own?.manifestList ?? parent['manifest-list'],
      summary: own?.summary ?? { operation: 'replace' },
    };
    const target = nextMetadataLocation(deps, ident, metadataLocation, metadata, deps.random);
    await publishMetadata(deps, ident, metadataLocation, target, withMainSnapshot(next, snapshot));
    return id;
  };

  return {
    store,
    deps,
    append,
    rewriter,
    rowsOf,
    ids,
    foreignCommit,
    advance: (ms: number) => {
      now += ms;
    },
    now: () => now,
  };
}
