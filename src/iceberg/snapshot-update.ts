import { CommitConflictError } from '../errors.ts';
import { identString, type TableIdent } from './catalog.ts';
import { parseJson } from './json.ts';
import type { DataFile } from './manifest.ts';
import {
  currentSchema,
  MAIN_BRANCH,
  type Snapshot,
  type SnapshotSummary,
  serializeTableMetadata,
  type TableMetadata,
} from './metadata.ts';
import { TABLE_PROPERTIES } from './new-table.ts';
import { joinUri } from './object-store.ts';
import { type MappedField, nameMapping } from './schema.ts';
import { newUuid, type TableDeps } from './table.ts';

/**
 * Pieces every metadata commit shares (appends, compaction, snapshot expiry): the name mapping files are
 * read with, snapshot summaries, the next metadata version and its compare-and-swap in the catalog.
 */

/** Previous versions kept in `metadata-log`, as Iceberg's `write.metadata.previous-versions-max`. */
export const METADATA_LOG_MAX = 100;

/** The name mapping Parquet files without field ids are read with: the table's, else the current schema's. */
export function mappingOf(metadata: TableMetadata): MappedField[] {
  const text = metadata.properties[TABLE_PROPERTIES.nameMapping];
  return text
    ? (parseJson(text) as MappedField[]).map(normalizeMapping)
    : nameMapping(currentSchema(metadata));
}

// Lossless parsing yields bigint ids; the mapping compares them with numbers.
function normalizeMapping(m: MappedField): MappedField {
  const out: MappedField = { 'field-id': Number(m['field-id']), names: m.names };
  if (m.fields) out.fields = m.fields.map(normalizeMapping);
  return out;
}

const partitionKey = (f: DataFile) =>
  JSON.stringify(f.partition, (_k, v) => (typeof v === 'bigint' ? String(v) : v));

/**
 * The standard summary of a snapshot that adds and removes data files. Totals carry forward from the
 * parent; a parent written without them leaves them unknown, as Iceberg does.
 */
export function snapshotSummary(
  operation: 'append' | 'replace' | 'overwrite' | 'delete',
  parent: Snapshot | undefined,
  added: DataFile[],
  deleted: DataFile[] = [],
): SnapshotSummary {
  const records = (fs: DataFile[]) => fs.reduce((n, f) => n + f.record_count, 0);
  const size = (fs: DataFile[]) => fs.reduce((n, f) => n + f.file_size_in_bytes, 0);
  const summary: SnapshotSummary = { operation, 'added-data-files': String(added.length) };
  if (deleted.length > 0) summary['deleted-data-files'] = String(deleted.length);
  summary['added-records'] = String(records(added));
  if (deleted.length > 0) summary['deleted-records'] = String(records(deleted));
  summary['added-files-size'] = String(size(added));
  if (deleted.length > 0) summary['removed-files-size'] = String(size(deleted));
  summary['changed-partition-count'] = String(new Set([...added, ...deleted].map(partitionKey)).size);
  const prev = (k: string) => (parent ? parent.summary[k] : '0');
  const total = (k: string, delta: number) => {
    const p = prev(k);
    if (p !== undefined && /^\d+$/.test(p)) summary[k] = String(Number(p) + delta);
  };
  total('total-records', records(added) - records(deleted));
  total('total-files-size', size(added) - size(deleted));
  total('total-data-files', added.length - deleted.length);
  total('total-delete-files', 0);
  total('total-position-deletes', 0);
  total('total-equality-deletes', 0);
  return summary;
}

/** `metadata` one version on: the previous file logged, `last-updated-ms` never going backwards. */
export function nextVersion(
  metadata: TableMetadata,
  metadataLocation: string,
  nowMs: number,
): TableMetadata & { 'last-updated-ms': number } {
  return {
    ...metadata,
    'last-updated-ms': Math.max(nowMs, metadata['last-updated-ms']),
    'metadata-log': [
      ...metadata['metadata-log'],
      { 'timestamp-ms': metadata['last-updated-ms'], 'metadata-file': metadataLocation },
    ].slice(-METADATA_LOG_MAX),
  };
}

/** `next` (from `nextVersion`) with `snapshot` added as the head of the main branch. */
export function withMainSnapshot(next: TableMetadata, snapshot: Snapshot): TableMetadata {
  const id = snapshot['snapshot-id'];
  return {
    ...next,
    'last-sequence-number': snapshot['sequence-number'],
    'current-snapshot-id': id,
    snapshots: [...next.snapshots, snapshot],
    refs: { ...next.refs, [MAIN_BRANCH]: { 'snapshot-id': id, type: 'branch' } },
    'snapshot-log': [
      ...next['snapshot-log'],
      { 'timestamp-ms': snapshot['timestamp-ms'], 'snapshot-id': id },
    ],
  };
}

function versionAfter(location: string, metadata: TableMetadata): number {
  const name = location.slice(location.lastIndexOf('/') + 1);
  const n = /^v?(\d+)[-.]/.exec(name)?.[1];
  return n === undefined ? metadata['metadata-log'].length + 1 : Number(n) + 1;
}

/** Where the version after `metadataLocation` goes: the catalog's choice, else `NNNNN-<uuid>.metadata.json`. */
export function nextMetadataLocation(
  deps: TableDeps,
  table: TableIdent,
  metadataLocation: string,
  metadata: TableMetadata,
  random: (n: number) => Uint8Array,
): string {
  return (
    deps.catalog.nextMetadataLocation?.(table, metadataLocation) ??
    joinUri(
      metadata.location,
      'metadata',
      `${String(versionAfter(metadataLocation, metadata)).padStart(5, '0')}-${newUuid(random)}.metadata.json`,
    )
  );
}

/**
 * Writes `next` at `nextLocation` (never over an existing file) and swaps the catalog from `expected` to
 * it. Throws CommitConflictError when another commit got there first; the file is then removed unless
 * the catalog's commit is the file name itself (that catalog owns the file once written).
 */
export async function publishMetadata(
  deps: Pick<TableDeps, 'store' | 'catalog'>,
  table: TableIdent,
  expected: string,
  nextLocation: string,
  next: TableMetadata,
): Promise<void> {
  let written = false;
  try {
    written = await deps.store.put(nextLocation, new TextEncoder().encode(serializeTableMetadata(next)), {
      ifNoneMatch: true,
    });
    if (!written)
      throw new CommitConflictError(`${nextLocation} was written by another commit to ${identString(table)}`);
    await deps.catalog.swapMetadataLocation(table, expected, nextLocation);
  } catch (error) {
    if (error instanceof CommitConflictError && written && !deps.catalog.nextMetadataLocation)
      await deps.store.delete(nextLocation).catch(() => undefined);
    throw error;
  }
}

/** Jittered exponential backoff before commit attempt `attempt + 1`, capped at 2 s. */
export function retryDelayMs(attempt: number, random: (n: number) => Uint8Array): number {
  return Math.min(2000, 25 * 2 ** attempt) * (0.5 + random(1)[0]! / 510);
}

export const defaultSleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
