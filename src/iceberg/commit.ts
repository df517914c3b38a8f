import { CommitConflictError, InputError } from '../errors.ts';
import { identString, type TableIdent } from './catalog.ts';
import { dataFileFromParquet } from './data-file.ts';
import type { DataFile } from './manifest.ts';
import { type ManifestFile, readManifestList, writeManifestList } from './manifest-list.ts';
import {
  currentSchema,
  currentSnapshot,
  defaultSpec,
  type Snapshot,
  type TableMetadata,
} from './metadata.ts';
import { TABLE_PROPERTIES } from './new-table.ts';
import { joinUri } from './object-store.ts';
import {
  addedEntries,
  defaultSleep,
  mappingOf,
  nextMetadataLocation,
  nextVersion,
  publishMetadata,
  putManifest,
  retryDelayMs,
  snapshotSummary,
  withMainSnapshot,
} from './snapshot-update.ts';
import {
  type FoundMarker,
  findMarker,
  loadTable,
  markerSummary,
  newSnapshotId,
  newUuid,
  nowOf,
  type OffloadMarker,
  randomOf,
  type TableDeps,
} from './table.ts';

export type AppendDeps = TableDeps & {
  /** Commit attempts before giving up on a table that keeps changing underneath (default 6). */
  maxAttempts?: number;
  sleep?: (ms: number) => Promise<void>;
};

export type AppendRequest = {
  table: TableIdent;
  /** The batch's marker; `rows` must equal the rows in `files` (checked from their footers). */
  marker: OffloadMarker;
  /** Absolute URIs of Parquet data files, each holding rows of one partition. */
  files: string[];
  /**
   * Checked on every attempt against the metadata the commit is built on, after the batch id check and
   * before anything is written: a requirement such as "no newer window is committed" (it throws to stop).
   */
  require?: (metadata: TableMetadata) => void;
  /** Called once the data files and manifests are in place, just before the metadata commit. */
  beforeMetadataCommit?: () => void;
};

export type AppendResult = {
  status: 'committed' | 'already-committed';
  marker: FoundMarker;
  metadataLocation: string;
  attempts: number;
};

/**
 * Appends data files in one snapshot carrying the batch's marker, unless the main branch already has a
 * snapshot with this batch id (then nothing is written and that snapshot is returned). A lost race in
 * the catalog reloads the table, checks the marker again and rebuilds the commit on the new metadata.
 */
export async function fastAppend(deps: AppendDeps, request: AppendRequest): Promise<AppendResult> {
  const random = randomOf(deps);
  const sleep = deps.sleep ?? defaultSleep;
  const maxAttempts = deps.maxAttempts ?? 6;
  const snapshotId = newSnapshotId(random);
  const name = identString(request.table);
  // Footers are read once per schema and spec; manifests are rewritten only if those change.
  let prepared: { key: string; files: DataFile[]; manifest: ManifestFile | undefined } | undefined;

  // Stryker disable next-line BlockStatement: an emptied retry loop only spins; its one verdict is a timeout
  for (let attempt = 1; ; attempt++) {
    const { metadataLocation, metadata } = await loadTable(deps, request.table);
    const existing = findMarker(metadata, request.marker.batchId);
    if (existing)
      return { status: 'already-committed', marker: existing, metadataLocation, attempts: attempt };
    request.require?.(metadata);

    const schema = currentSchema(metadata);
    const spec = defaultSpec(metadata);
    const key = `${schema['schema-id']}/${spec['spec-id']}/${metadata.properties[TABLE_PROPERTIES.nameMapping] ?? ''}`;
    if (prepared?.key !== key) {
      const mapping = mappingOf(metadata);
      const files = await Promise.all(
        request.files.map((uri) => dataFileFromParquet({ store: deps.store, uri, schema, spec, mapping })),
      );
      const rows = files.reduce((n, f) => n + f.record_count, 0);
      if (rows !== request.marker.rows)
        throw new InputError(
          `batch ${request.marker.batchId} of ${name}: the staged files hold ${rows} rows, the batch says ${request.marker.rows}; stage the batch again`,
          { table: name, batchId: request.marker.batchId, fileRows: rows, expectedRows: request.marker.rows },
        );
      let manifest: ManifestFile | undefined;
      if (files.length > 0) {
        // The sequence number is set per attempt below: it is only known against the metadata we commit on.
        manifest = await putManifest(deps.store, {
          uri: joinUri(metadata.location, 'metadata', `${newUuid(random)}-m0.avro`),
          schema,
          spec,
          entries: addedEntries(files, snapshotId),
          snapshotId,
          sequenceNumber: 0n,
        });
      }
      prepared = { key, files, manifest };
    }

    const sequenceNumber = metadata['last-sequence-number'] + 1n;
    const parent = currentSnapshot(metadata);
    const inherited = parent
      ? readManifestList(await deps.store.get(parent['manifest-list']), parent['manifest-list'])
      : [];
    const manifests = prepared.manifest
      ? [
          { ...prepared.manifest, sequence_number: sequenceNumber, min_sequence_number: sequenceNumber },
          ...inherited,
        ]
      : inherited;
    const listUri = joinUri(
      metadata.location,
      'metadata',
      `snap-${snapshotId}-${attempt}-${newUuid(random)}.avro`,
    );
    await deps.store.put(
      listUri,
      writeManifestList({ snapshotId, parentSnapshotId: parent?.['snapshot-id'], sequenceNumber, manifests }),
    );

    const next = nextVersion(metadata, metadataLocation, nowOf(deps));
    const snapshot: Snapshot = {
      'snapshot-id': snapshotId,
      ...(parent ? { 'parent-snapshot-id': parent['snapshot-id'] } : {}),
      'sequence-number': sequenceNumber,
      'timestamp-ms': next['last-updated-ms'],
      'manifest-list': listUri,
      summary: { ...snapshotSummary('append', parent, prepared.files), ...markerSummary(request.marker) },
      'schema-id': schema['schema-id'],
    };
    const committed = withMainSnapshot(next, snapshot);
    const nextLocation = nextMetadataLocation(deps, request.table, metadataLocation, metadata, random);

    request.beforeMetadataCommit?.();
    try {
      await publishMetadata(deps, request.table, metadataLocation, nextLocation, committed);
      const marker = findMarker(committed, request.marker.batchId) as FoundMarker;
      return { status: 'committed', marker, metadataLocation: nextLocation, attempts: attempt };
    } catch (error) {
      if (!(error instanceof CommitConflictError)) throw error;
      // This attempt's list is referenced by nothing now (the manifest is reused by the next attempt).
      await deps.store.delete(listUri).catch(() => undefined);
      if (attempt >= maxAttempts)
        throw new CommitConflictError(
          `append to ${name} lost ${attempt} races for the catalog in a row; retry the commit step`,
          { table: name, batchId: request.marker.batchId, attempts: attempt },
          { cause: error },
        );
      await sleep(retryDelayMs(attempt, random));
    }
  }
}
