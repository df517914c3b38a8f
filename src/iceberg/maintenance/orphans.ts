import { InputError } from '../../errors.ts';
import type { TableIdent } from '../catalog.ts';
import type { TableMetadata } from '../metadata.ts';
import { joinUri } from '../object-store.ts';
import { loadTable } from '../table.ts';
import { deleteAll, type MaintenanceDeps, ManifestReader, sameFile, snapshotFiles } from './reachable.ts';

/** How long callers let a file live unreferenced before it counts as an orphan: in-flight commits are younger. */
export const DEFAULT_ORPHAN_GRACE_MS = 3 * 24 * 3600 * 1000;

export type OrphanRequest = {
  table: TableIdent;
  /** Epoch milliseconds: only files last modified before this instant may be removed. */
  olderThanMs: number;
  /** List the orphans without deleting them. */
  dryRun?: boolean;
};

export type OrphanResult = {
  /** Unreferenced files older than the cutoff: deleted, or with `dryRun` the ones that would be. */
  orphans: string[];
  deleted: number;
  failedDeletes: string[];
  /** Unreferenced files kept because they are younger than the cutoff. */
  young: number;
  /** Files listed under the table's location. */
  scanned: number;
};

// Statistics files are recorded in members this writer keeps without interpreting.
function statisticsFiles(metadata: TableMetadata): string[] {
  const out: string[] = [];
  for (const key of ['statistics', 'partition-statistics']) {
    const entries = metadata.extra?.[key];
    if (Array.isArray(entries))
      for (const e of entries) {
        const path = (e as Record<string, unknown>)?.['statistics-path'];
        if (typeof path === 'string') out.push(path);
      }
  }
  return out;
}

/**
 * Every file a table's metadata refers to: this metadata file and the ones in its log, the version hint
 * readers without a catalog look at, and each snapshot's manifest list, manifests and live data files.
 */
export async function referencedFiles(
  reader: ManifestReader,
  metadataLocation: string,
  metadata: TableMetadata,
): Promise<Set<string>> {
  const files = await snapshotFiles(reader, metadata.snapshots, { live: true, skipMissing: false });
  return new Set(
    [
      metadataLocation,
      joinUri(metadata.location, 'metadata', 'version-hint.text'),
      ...metadata['metadata-log'].map((e) => e['metadata-file']),
      ...statisticsFiles(metadata),
      ...files.manifestLists,
      ...files.manifests,
      ...files.dataFiles,
    ].map(sameFile),
  );
}

/**
 * Deletes files under the table's location that its metadata does not refer to and that are older than
 * `olderThanMs` (files of a commit still in flight are young). The table is read again after the
 * listing, and whatever a commit made meanwhile refers to is kept too.
 */
export async function removeOrphanFiles(
  deps: MaintenanceDeps,
  request: OrphanRequest,
): Promise<OrphanResult> {
  if (!Number.isFinite(request.olderThanMs))
    throw new InputError(`olderThanMs must be an instant in epoch milliseconds, got ${request.olderThanMs}`, {
      olderThanMs: request.olderThanMs,
    });
  const reader = new ManifestReader(deps.store);
  const before = await loadTable(deps, request.table);
  const referenced = await referencedFiles(reader, before.metadataLocation, before.metadata);

  const candidates: string[] = [];
  let scanned = 0;
  let young = 0;
  for await (const info of deps.store.list(`${before.metadata.location.replace(/\/+$/, '')}/`)) {
    scanned++;
    if (referenced.has(sameFile(info.uri))) continue;
    if (info.lastModified.getTime() < request.olderThanMs) candidates.push(info.uri);
    else young++;
  }

  const after = await loadTable(deps, request.table);
  if (after.metadataLocation !== before.metadataLocation)
    for (const uri of await referencedFiles(reader, after.metadataLocation, after.metadata))
      referenced.add(uri);
  const orphans = candidates.filter((uri) => !referenced.has(sameFile(uri))).sort();
  if (request.dryRun) return { orphans, deleted: 0, failedDeletes: [], young, scanned };
  const { deleted, failed } = await deleteAll(deps.store, orphans);
  return { orphans, deleted: deleted.length, failedDeletes: failed, young, scanned };
}
