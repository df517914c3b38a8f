import { CommitConflictError, InputError } from '../../errors.ts';
import { identString, type TableIdent } from '../catalog.ts';
import { ancestry, type SnapshotLogEntry, type TableMetadata } from '../metadata.ts';
import {
  defaultSleep,
  nextMetadataLocation,
  nextVersion,
  publishMetadata,
  retryDelayMs,
} from '../snapshot-update.ts';
import { loadTable, newestMarker, nowOf, randomOf } from '../table.ts';
import { deleteAll, type MaintenanceDeps, ManifestReader, snapshotFiles } from './reachable.ts';

export type ExpireRequest = {
  table: TableIdent;
  /** Epoch milliseconds: snapshots committed before this instant may be expired. */
  olderThanMs: number;
  /** Ancestors of the current snapshot kept whatever their age, the current one included (default 1). */
  retainLast?: number;
};

export type ExpireResult = {
  expiredSnapshotIds: bigint[];
  retainedSnapshots: number;
  deletedManifestLists: number;
  deletedManifests: number;
  deletedDataFiles: number;
  /** Files that could not be deleted after the commit: orphans now, for `removeOrphanFiles`. */
  failedDeletes: string[];
  metadataLocation: string;
  /** Catalog commits tried; 0 when there was nothing to expire. */
  attempts: number;
};

/**
 * The ids of snapshots to expire. Kept: every ref's head (the current snapshot among them), the newest
 * `retainLast` ancestors of the current snapshot, every snapshot from the current one back to the one
 * carrying the newest offload marker (reconcile walks parent ids to find it, so the chain must stay
 * whole), and every snapshot not older than `olderThanMs`.
 */
export function snapshotsToExpire(
  metadata: TableMetadata,
  options: { olderThanMs: number; retainLast: number },
): Set<bigint> {
  const keep = new Set<bigint>(Object.values(metadata.refs).map((r) => r['snapshot-id']));
  const marker = newestMarker(metadata)?.snapshotId;
  let markerPassed = marker === undefined;
  let depth = 0;
  for (const s of ancestry(metadata)) {
    if (depth++ < options.retainLast || !markerPassed) keep.add(s['snapshot-id']);
    if (s['snapshot-id'] === marker) markerPassed = true;
  }
  return new Set(
    metadata.snapshots
      .filter((s) => !keep.has(s['snapshot-id']) && s['timestamp-ms'] < options.olderThanMs)
      .map((s) => s['snapshot-id']),
  );
}

/**
 * Any log entry whose snapshot is gone drops the history before it too: a gap would make a time-travel
 * query by timestamp read the next snapshot for a time when another one was current (Iceberg does this).
 */
function trimSnapshotLog(log: SnapshotLogEntry[], kept: Set<bigint>): SnapshotLogEntry[] {
  let out: SnapshotLogEntry[] = [];
  for (const e of log) {
    if (kept.has(e['snapshot-id'])) out.push(e);
    else out = [];
  }
  return out;
}

function checkRequest(request: ExpireRequest): number {
  const retainLast = request.retainLast ?? 1;
  if (!Number.isInteger(retainLast) || retainLast < 1)
    throw new InputError(
      `retainLast must be a whole number of at least 1 (the current snapshot is always kept), got ${retainLast}`,
      { retainLast },
    );
  if (!Number.isFinite(request.olderThanMs))
    throw new InputError(`olderThanMs must be an instant in epoch milliseconds, got ${request.olderThanMs}`, {
      olderThanMs: request.olderThanMs,
    });
  return retainLast;
}

/**
 * Removes old snapshots from the table's metadata in one catalog commit (retried on a lost race against
 * the reloaded table), then deletes the manifest lists, manifests and data files that no kept snapshot
 * reads. Nothing is deleted before the commit succeeded; a crash in between leaves orphans only.
 */
export async function expireSnapshots(deps: MaintenanceDeps, request: ExpireRequest): Promise<ExpireResult> {
  const retainLast = checkRequest(request);
  const random = randomOf(deps);
  const sleep = deps.sleep ?? defaultSleep;
  const maxAttempts = deps.maxAttempts ?? 6;
  // Stryker disable next-line BlockStatement: an emptied retry loop only spins; its one verdict is a timeout
  for (let attempt = 1; ; attempt++) {
    const { metadataLocation, metadata } = await loadTable(deps, request.table);
    const expired = snapshotsToExpire(metadata, { olderThanMs: request.olderThanMs, retainLast });
    if (expired.size === 0)
      return {
        expiredSnapshotIds: [],
        retainedSnapshots: metadata.snapshots.length,
        deletedManifestLists: 0,
        deletedManifests: 0,
        deletedDataFiles: 0,
        failedDeletes: [],
        metadataLocation,
        attempts: 0,
      };

    const snapshots = metadata.snapshots.filter((s) => !expired.has(s['snapshot-id']));
    const kept = new Set(snapshots.map((s) => s['snapshot-id']));
    const next: TableMetadata = {
      ...nextVersion(metadata, metadataLocation, nowOf(deps)),
      snapshots,
      'snapshot-log': trimSnapshotLog(metadata['snapshot-log'], kept),
    };
    const nextLocation = nextMetadataLocation(deps, request.table, metadataLocation, metadata, random);
    try {
      await publishMetadata(deps, request.table, metadataLocation, nextLocation, next);
    } catch (error) {
      if (!(error instanceof CommitConflictError)) throw error;
      if (attempt >= maxAttempts)
        throw new CommitConflictError(
          `expiring snapshots of ${identString(request.table)} lost ${attempt} races for the catalog in a row; run it again later`,
          { table: identString(request.table), attempts: attempt },
          { cause: error },
        );
      await sleep(retryDelayMs(attempt, random));
      continue;
    }

    // Kept snapshots are read in full first: a manifest that cannot be read stops the cleanup.
    const reader = new ManifestReader(deps.store);
    const keep = await snapshotFiles(reader, snapshots, { live: true, skipMissing: false });
    const gone = await snapshotFiles(
      reader,
      // Stryker disable next-line MethodExpression: every kept snapshot's files are in `keep`, taken out before any delete
      metadata.snapshots.filter((s) => expired.has(s['snapshot-id'])),
      { live: false, skipMissing: true },
    );
    const unreachable = (k: keyof typeof keep) => [...gone[k]].filter((uri) => !keep[k].has(uri));
    const data = await deleteAll(deps.store, unreachable('dataFiles'));
    const manifests = await deleteAll(deps.store, unreachable('manifests'));
    const lists = await deleteAll(deps.store, unreachable('manifestLists'));
    return {
      expiredSnapshotIds: metadata.snapshots
        .filter((s) => expired.has(s['snapshot-id']))
        .map((s) => s['snapshot-id']),
      retainedSnapshots: snapshots.length,
      deletedManifestLists: lists.deleted.length,
      deletedManifests: manifests.deleted.length,
      deletedDataFiles: data.deleted.length,
      failedDeletes: [...data.failed, ...manifests.failed, ...lists.failed],
      metadataLocation: nextLocation,
      attempts: attempt,
    };
  }
}
