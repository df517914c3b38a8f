import { CommitConflictError } from '../errors.ts';
import { identString, type TableIdent } from './catalog.ts';
import { parseJson } from './json.ts';
import {
  type DataFile,
  ENTRY_STATUS,
  type ManifestEntry,
  type PartitionValues,
  partitionType,
  writeManifest,
} from './manifest.ts';
import { type ManifestFile, summarizePartitions } from './manifest-list.ts';
import {
  currentSchema,
  MAIN_BRANCH,
  type PartitionSpec,
  type Snapshot,
  type SnapshotSummary,
  serializeTableMetadata,
  type TableMetadata,
} from './metadata.ts';
import { TABLE_PROPERTIES } from './new-table.ts';
import { joinUri, type ObjectStore } from './object-store.ts';
import { type MappedField, nameMapping, type Schema } from './schema.ts';
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

/** A partition tuple as a string, for grouping and comparing. */
export const partitionKey = (partition: PartitionValues) =>
  JSON.stringify(partition, (_k, v) =>
    typeof v === 'bigint' ? `${v}n` : v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v,
  );

/**
 * Entries adding `files` in snapshot `snapshotId`. Sequence numbers stay null, inherited from the
 * manifest list, so a commit retried on newer metadata reuses the manifest.
 */
export const addedEntries = (files: DataFile[], snapshotId: bigint): ManifestEntry[] =>
  files.map((f) => ({
    status: ENTRY_STATUS.added,
    snapshot_id: snapshotId,
    sequence_number: null,
    file_sequence_number: null,
    data_file: f,
  }));

export type ManifestOutput = {
  uri: string;
  schema: Schema;
  spec: PartitionSpec;
  entries: ManifestEntry[];
  snapshotId: bigint;
  /** The sequence number of the commit; may be set later for manifests whose entries inherit it. */
  sequenceNumber: bigint;
};

/** Writes a data manifest and returns its manifest list entry: counts, rows and partition summaries. */
export async function putManifest(store: ObjectStore, out: ManifestOutput): Promise<ManifestFile> {
  const body = writeManifest({ schema: out.schema, spec: out.spec, entries: out.entries });
  await store.put(out.uri, body);
  const of = (status: number) => out.entries.filter((e) => e.status === status);
  const rows = (es: ManifestEntry[]) => es.reduce((n, e) => n + e.data_file.record_count, 0);
  const live = out.entries.filter((e) => e.status !== ENTRY_STATUS.deleted);
  let minSequence = out.sequenceNumber;
  for (const e of live)
    if (e.sequence_number !== null && e.sequence_number < minSequence) minSequence = e.sequence_number;
  return {
    manifest_path: out.uri,
    manifest_length: body.length,
    partition_spec_id: out.spec['spec-id'],
    content: 0,
    sequence_number: out.sequenceNumber,
    min_sequence_number: minSequence,
    added_snapshot_id: out.snapshotId,
    added_files_count: of(ENTRY_STATUS.added).length,
    existing_files_count: of(ENTRY_STATUS.existing).length,
    deleted_files_count: of(ENTRY_STATUS.deleted).length,
    added_rows_count: rows(of(ENTRY_STATUS.added)),
    existing_rows_count: rows(of(ENTRY_STATUS.existing)),
    deleted_rows_count: rows(of(ENTRY_STATUS.deleted)),
    partitions: summarizePartitions(partitionType(out.spec, out.schema), out.entries),
  };
}

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
  summary['changed-partition-count'] = String(
    new Set([...added, ...deleted].map((f) => partitionKey(f.partition))).size,
  );
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
    await deps.catalog.swapMetadataLocation(table, expected, nextLocation, next);
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
