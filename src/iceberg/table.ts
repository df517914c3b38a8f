import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import type { TableConfig } from '../config/schema.ts';
import { CommitConflictError, InputError } from '../errors.ts';
import { type HourCount, hourCountSchema } from '../watermark/hourly-types.ts';
import { type Catalog, identString, type TableIdent } from './catalog.ts';
import { type DataFile, readManifest } from './manifest.ts';
import { readManifestList } from './manifest-list.ts';
import {
  ancestry,
  parseTableMetadata,
  type Snapshot,
  serializeTableMetadata,
  type TableMetadata,
} from './metadata.ts';
import { newTableMetadata } from './new-table.ts';
import { joinUri, type ObjectStore } from './object-store.ts';

/** What a table operation needs: where files live, where the current metadata is recorded, time, chance. */
export type TableDeps = {
  store: ObjectStore;
  catalog: Catalog;
  /** Milliseconds since the epoch. */
  clock?: () => number;
  /** `n` random bytes; injected so ids and file names are reproducible in tests. */
  random?: (n: number) => Uint8Array;
};

export const randomOf = (deps: TableDeps) => deps.random ?? ((n: number) => new Uint8Array(randomBytes(n)));
export const nowOf = (deps: TableDeps) => (deps.clock ?? Date.now)();

export function newUuid(random: (n: number) => Uint8Array): string {
  const b = random(16);
  b[6] = ((b[6] as number) & 0x0f) | 0x40;
  b[8] = ((b[8] as number) & 0x3f) | 0x80;
  const hex = Buffer.from(b).toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** A positive 63-bit snapshot id, as Iceberg writers pick them. */
export function newSnapshotId(random: (n: number) => Uint8Array): bigint {
  for (;;) {
    const id = Buffer.from(random(8)).readBigUInt64BE() & (2n ** 63n - 1n);
    if (id !== 0n) return id;
  }
}

export type LoadedTable = { metadataLocation: string; metadata: TableMetadata };

export async function loadTable(
  deps: Pick<TableDeps, 'store' | 'catalog'>,
  table: TableIdent,
): Promise<LoadedTable> {
  const metadataLocation = await deps.catalog.currentMetadataLocation(table);
  if (metadataLocation === undefined)
    throw new InputError(
      `Iceberg table ${identString(table)} does not exist in the ${deps.catalog.kind} catalog; create it first`,
      {
        table: identString(table),
      },
    );
  const text = new TextDecoder().decode(await deps.store.get(metadataLocation));
  return { metadataLocation, metadata: parseTableMetadata(text, metadataLocation) };
}

/** The offload marker a snapshot summary carries (DESIGN.md section 3, step 4). */
export const MARKER_KEYS = {
  batchId: 'k2.offload.batch-id',
  table: 'k2.offload.table',
  windowStart: 'k2.offload.window-start',
  windowEnd: 'k2.offload.window-end',
  rows: 'k2.offload.rows',
  hours: 'k2.offload.hours',
} as const;

export type OffloadMarker = {
  batchId: string;
  table: string;
  windowStart: string;
  windowEnd: string;
  rows: number;
  /**
   * The batch's rows per hour of the cursor (candles: with a value checksum), as the hourly ledger
   * records them. Carried in the snapshot so a batch whose ledger entry a crash lost (Iceberg committed,
   * the watermark step never ran and the next plan reconciled it) is recorded from Iceberg itself.
   */
  hours?: HourCount[];
};
export type FoundMarker = OffloadMarker & { snapshotId: bigint; sequenceNumber: bigint; timestampMs: number };

function markerOf(s: Snapshot): FoundMarker | undefined {
  const get = (k: string) => s.summary[k];
  const batchId = get(MARKER_KEYS.batchId);
  if (batchId === undefined) return undefined;
  return {
    batchId,
    table: get(MARKER_KEYS.table) ?? '',
    windowStart: get(MARKER_KEYS.windowStart) ?? '',
    windowEnd: get(MARKER_KEYS.windowEnd) ?? '',
    rows: Number(get(MARKER_KEYS.rows) ?? Number.NaN),
    hours: parseMarkerHours(get(MARKER_KEYS.hours)),
    snapshotId: s['snapshot-id'],
    sequenceNumber: s['sequence-number'],
    timestampMs: s['timestamp-ms'],
  };
}

export const markerSummary = (m: OffloadMarker): Record<string, string> => ({
  [MARKER_KEYS.batchId]: m.batchId,
  [MARKER_KEYS.table]: m.table,
  [MARKER_KEYS.windowStart]: m.windowStart,
  [MARKER_KEYS.windowEnd]: m.windowEnd,
  [MARKER_KEYS.rows]: String(m.rows),
  ...(m.hours ? { [MARKER_KEYS.hours]: JSON.stringify(m.hours) } : {}),
});

const markerHoursSchema = z.array(hourCountSchema);

/**
 * A marker's hours, or undefined when absent (a snapshot written before markers carried them) or not
 * as we write them (another writer's value): the hourly check then skips that window, as for any batch
 * without a ledger entry, rather than trusting numbers it cannot read.
 */
function parseMarkerHours(text: string | undefined): HourCount[] | undefined {
  if (text === undefined) return undefined;
  try {
    const parsed = markerHoursSchema.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

/** The snapshot of the main branch's ancestry that carries this batch id, if any. */
export function findMarker(metadata: TableMetadata, batchId: string): FoundMarker | undefined {
  for (const s of ancestry(metadata)) if (s.summary[MARKER_KEYS.batchId] === batchId) return markerOf(s);
  return undefined;
}

/** The newest marker along the main branch's ancestry: how far the cold tier has got. */
export function newestMarker(metadata: TableMetadata): FoundMarker | undefined {
  for (const s of ancestry(metadata)) {
    const m = markerOf(s);
    if (m) return m;
  }
  return undefined;
}

/** The markers along the main branch's ancestry whose window ends after `cursor`, oldest first. */
export function markersAfter(metadata: TableMetadata, cursor: string): FoundMarker[] {
  const after: FoundMarker[] = [];
  for (const s of ancestry(metadata)) {
    const m = markerOf(s);
    if (!m) continue;
    if (Date.parse(m.windowEnd) <= Date.parse(cursor)) break;
    after.push(m);
  }
  return after.reverse();
}

export type LiveDataFile = { file: DataFile; specId: number; snapshotId: bigint; sequenceNumber: bigint };

/** Data files of a snapshot (default: the current one) that are not deleted, with inherited ids resolved. */
export async function liveDataFiles(
  store: ObjectStore,
  metadata: TableMetadata,
  snapshotId = metadata['current-snapshot-id'],
): Promise<LiveDataFile[]> {
  if (snapshotId === undefined) return [];
  const snapshot = metadata.snapshots.find((s) => s['snapshot-id'] === snapshotId);
  if (!snapshot)
    throw new InputError(`snapshot ${snapshotId} is not in the table metadata`, {
      snapshotId: String(snapshotId),
    });
  const out: LiveDataFile[] = [];
  const list = readManifestList(await store.get(snapshot['manifest-list']), snapshot['manifest-list']);
  for (const m of list) {
    if (m.content !== 0) continue;
    const manifest = readManifest(await store.get(m.manifest_path), m.manifest_path);
    for (const e of manifest.entries) {
      if (e.status === 2) continue;
      // Added entries with null ids inherit them from the manifest list (spec: "Sequence Number Inheritance").
      out.push({
        file: e.data_file,
        specId: m.partition_spec_id,
        snapshotId: e.snapshot_id ?? m.added_snapshot_id,
        sequenceNumber: e.sequence_number ?? m.sequence_number,
      });
    }
  }
  return out;
}

export type CreateTableRequest = {
  table: TableIdent;
  config: TableConfig;
  /** The table's root, e.g. `defaultTableLocation(warehouse, ident)`. */
  location: string;
  properties?: Record<string, string>;
};
export type CreateTableResult = LoadedTable & { created: boolean };

/**
 * Creates the table (metadata version 1 registered in the catalog), or returns the one that exists, as
 * it is: `evolveTable` brings an existing table to the config.
 */
export async function createTable(deps: TableDeps, request: CreateTableRequest): Promise<CreateTableResult> {
  const random = randomOf(deps);
  const tableUuid = newUuid(random);
  const wanted = newTableMetadata(request.config, {
    location: request.location,
    tableUuid,
    nowMs: nowOf(deps),
    ...(request.properties ? { properties: request.properties } : {}),
  });
  if ((await deps.catalog.currentMetadataLocation(request.table)) !== undefined)
    return { ...(await loadTable(deps, request.table)), created: false };
  // Before any file is written: a namespace the role may not create leaves nothing behind.
  await deps.catalog.createNamespace(request.table.namespace);
  const metadataLocation =
    deps.catalog.nextMetadataLocation?.(request.table, undefined) ??
    joinUri(wanted.location, 'metadata', `00000-${newUuid(random)}.metadata.json`);
  const written = await deps.store.put(
    metadataLocation,
    new TextEncoder().encode(serializeTableMetadata(wanted)),
    {
      ifNoneMatch: true,
    },
  );
  try {
    if (!written) throw new CommitConflictError(`${metadataLocation} already exists`);
    await deps.catalog.createTable(request.table, metadataLocation, wanted);
  } catch (error) {
    // A catalog whose commit is the file name owns the file once written; others never saw ours, so a
    // refused or lost create leaves no orphan metadata file behind.
    if (written && !deps.catalog.nextMetadataLocation)
      await deps.store.delete(metadataLocation).catch(() => undefined);
    // Someone created it first: that table is the one to use.
    if (!(error instanceof CommitConflictError)) throw error;
    return { ...(await loadTable(deps, request.table)), created: false };
  }
  return { metadataLocation, metadata: wanted, created: true };
}
