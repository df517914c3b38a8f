import { type Manifest, readManifest } from '../manifest.ts';
import { type ManifestFile, readManifestList } from '../manifest-list.ts';
import type { Snapshot } from '../metadata.ts';
import type { ObjectStore } from '../object-store.ts';
import type { TableDeps } from '../table.ts';

/** What maintenance needs besides a table's store and catalog: commit retries, as appends have them. */
export type MaintenanceDeps = TableDeps & {
  /** Commit attempts before giving up on a table that keeps changing underneath (default 6). */
  maxAttempts?: number;
  sleep?: (ms: number) => Promise<void>;
};

/** Files of a set of snapshots, by kind, as normalized URIs (see `sameFile`). */
export type SnapshotFiles = { manifestLists: Set<string>; manifests: Set<string>; dataFiles: Set<string> };

/**
 * One URI form per file, so references written as `file:/x`, `file:///x` or `s3a://b/k` match what a
 * store lists (`file:///x`, `s3://b/k`).
 */
export function sameFile(uri: string): string {
  if (uri.startsWith('file:')) return `file:///${uri.slice('file:'.length).replace(/^\/+/, '')}`;
  return uri.replace(/^s3[an]:\/\//, 's3://');
}

/** Reads manifest lists and manifests once each, however many snapshots share them. */
export class ManifestReader {
  private readonly lists = new Map<string, Promise<ManifestFile[]>>();
  private readonly manifests = new Map<string, Promise<Manifest>>();

  constructor(private readonly store: ObjectStore) {}

  list(uri: string): Promise<ManifestFile[]> {
    let p = this.lists.get(uri);
    if (!p) {
      p = this.store.get(uri).then((bytes) => readManifestList(bytes, uri));
      this.lists.set(uri, p);
    }
    return p;
  }

  manifest(uri: string): Promise<Manifest> {
    let p = this.manifests.get(uri);
    if (!p) {
      p = this.store.get(uri).then((bytes) => readManifest(bytes, uri));
      this.manifests.set(uri, p);
    }
    return p;
  }
}

/**
 * Everything the given snapshots reference. `live` counts only data files the snapshots read (entries
 * not marked deleted): what must be kept. Without it, deleted entries count too: what may be removed.
 * `skipMissing` tolerates manifest lists and manifests already gone (an earlier cleanup that stopped
 * halfway); for files that must be kept a missing manifest is an error, since its data files are unknown.
 */
export async function snapshotFiles(
  reader: ManifestReader,
  snapshots: Snapshot[],
  options: { live: boolean; skipMissing: boolean },
): Promise<SnapshotFiles> {
  const out: SnapshotFiles = { manifestLists: new Set(), manifests: new Set(), dataFiles: new Set() };
  const attempt = async <T>(read: Promise<T>): Promise<T | undefined> => {
    if (!options.skipMissing) return read;
    return read.catch(() => undefined);
  };
  const seenManifests = new Set<string>();
  for (const s of snapshots) {
    out.manifestLists.add(sameFile(s['manifest-list']));
    const list = await attempt(reader.list(s['manifest-list']));
    for (const m of list ?? []) {
      const key = sameFile(m.manifest_path);
      out.manifests.add(key);
      if (seenManifests.has(key)) continue;
      seenManifests.add(key);
      const manifest = await attempt(reader.manifest(m.manifest_path));
      for (const e of manifest?.entries ?? [])
        if (!options.live || e.status !== 2) out.dataFiles.add(sameFile(e.data_file.file_path));
    }
  }
  return out;
}

/** Deletes `uris` a few at a time; a failure is reported, not thrown (the file is an orphan then). */
export async function deleteAll(
  store: ObjectStore,
  uris: Iterable<string>,
  concurrency = 16,
): Promise<{ deleted: string[]; failed: string[] }> {
  const queue = [...uris];
  const deleted: string[] = [];
  const failed: string[] = [];
  const worker = async () => {
    for (let uri = queue.shift(); uri !== undefined; uri = queue.shift()) {
      try {
        await store.delete(uri);
        deleted.push(uri);
      } catch {
        failed.push(uri);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, queue.length) }, worker));
  return { deleted, failed };
}
