import { CommitConflictError, InputError } from '../errors.ts';
import { type Catalog, identString, type TableIdent } from './catalog.ts';
import { joinUri, type ObjectStore } from './object-store.ts';

/**
 * A catalog that is nothing but file names, as Iceberg's Hadoop catalog lays them out: the table lives at
 * `<warehouse>/<namespace>/<name>`, its versions are `metadata/v<N>.metadata.json`, and
 * `metadata/version-hint.text` holds the newest N for readers that look there first. No service is
 * needed, which is what readers without a catalog (chDB's `icebergLocal`, DuckDB's `iceberg_scan`) use.
 *
 * A commit is the conditional create of `v<N+1>`: of two writers building on `v<N>`, the store lets
 * exactly one create it. The current version is the highest `v<N>` present, found by listing, so a
 * stale or missing hint (two writers updating it out of order, a crash before it) is harmless.
 *
 * Writers may put the new metadata at `nextMetadataLocation(table, current)` themselves (with
 * `ifNoneMatch`, treating a refusal as a conflict), or anywhere else: then the swap copies it to `v<N+1>`
 * conditionally and deletes the original, and the table's location afterwards is the `v<N+1>` file.
 */
export type PathCatalog = Catalog & {
  readonly kind: 'path';
  readonly warehouseUri: string;
  tableLocation(table: TableIdent): string;
  versionHintLocation(table: TableIdent): string;
  nextMetadataLocation(table: TableIdent, current: string | undefined): string;
};

const VERSION_FILE = /^v(\d+)\.metadata\.json$/;
const HINT_FILE = 'version-hint.text';

export function createPathCatalog(store: ObjectStore, warehouseUri: string): PathCatalog {
  const warehouse = warehouseUri.replace(/\/+$/, '');
  const tableLocation = (t: TableIdent) => joinUri(warehouse, t.namespace, t.name);
  const metadataDir = (t: TableIdent) => joinUri(tableLocation(t), 'metadata');
  const versionUri = (t: TableIdent, n: number) => joinUri(metadataDir(t), `v${n}.metadata.json`);
  const hintUri = (t: TableIdent) => joinUri(metadataDir(t), HINT_FILE);

  /** N of a `v<N>.metadata.json` URI inside this table's metadata folder, else undefined. */
  const versionOf = (t: TableIdent, uri: string): number | undefined => {
    const dir = `${metadataDir(t)}/`;
    if (!uri.startsWith(dir)) return undefined;
    const match = VERSION_FILE.exec(uri.slice(dir.length));
    return match ? Number(match[1]) : undefined;
  };

  const requireVersion = (t: TableIdent, uri: string): number => {
    const n = versionOf(t, uri);
    if (n === undefined) {
      throw new InputError(
        `"${uri}" is not a version file of ${identString(t)} in the path catalog; expected ` +
          `${metadataDir(t)}/v<N>.metadata.json (use currentMetadataLocation to learn it)`,
        { table: identString(t), uri },
      );
    }
    return n;
  };

  async function highestVersion(t: TableIdent): Promise<number | undefined> {
    let highest: number | undefined;
    // Only version files and the hint start with "v"; manifests (snap-*, <uuid>-m*) are not listed.
    for await (const info of store.list(joinUri(metadataDir(t), 'v'))) {
      const n = versionOf(t, info.uri);
      if (n !== undefined && (highest === undefined || n > highest)) highest = n;
    }
    return highest;
  }

  /** Makes `v<n>` hold the metadata at `source` (or checks the writer already put it there). */
  async function commitVersion(
    t: TableIdent,
    n: number,
    source: string,
    conflict: () => CommitConflictError,
  ) {
    const target = versionUri(t, n);
    if (source === target) {
      if (!(await store.head(target))) {
        throw new InputError(
          `Cannot commit ${identString(t)}: ${target} was not written; put it with { ifNoneMatch: true } first`,
          { table: identString(t), uri: target },
        );
      }
    } else {
      const bytes = await store.get(source);
      if (!(await store.put(target, bytes, { ifNoneMatch: true }))) throw conflict();
      // Readers that pick the newest `*.metadata.json` by the number in its name would otherwise see two
      // candidates for one version.
      await store.delete(source);
    }
    await store.put(hintUri(t), new TextEncoder().encode(String(n)));
  }

  return {
    kind: 'path',
    warehouseUri: warehouse,
    tableLocation,
    versionHintLocation: hintUri,

    nextMetadataLocation(t, current) {
      return versionUri(t, current === undefined ? 1 : requireVersion(t, current) + 1);
    },

    // Folders exist implicitly once a table is written.
    async createNamespace() {},

    async currentMetadataLocation(t) {
      const n = await highestVersion(t);
      return n === undefined ? undefined : versionUri(t, n);
    },

    async createTable(t, metadataLocation) {
      const existing = await highestVersion(t);
      const writtenByCaller = metadataLocation === versionUri(t, 1) && existing === 1;
      if (existing !== undefined && !writtenByCaller) {
        throw new CommitConflictError(
          `Table ${identString(t)} already exists at ${versionUri(t, existing)}; load it and commit to it instead`,
          { table: identString(t), current: versionUri(t, existing) },
        );
      }
      await commitVersion(
        t,
        1,
        metadataLocation,
        () =>
          new CommitConflictError(`Table ${identString(t)} was created by another writer at the same time`, {
            table: identString(t),
          }),
      );
    },

    async swapMetadataLocation(t, expected, next) {
      const n = requireVersion(t, expected);
      const conflict = (why: string) =>
        new CommitConflictError(
          `Commit to ${identString(t)} lost a race: ${why}; reload the table and retry`,
          {
            table: identString(t),
            expected,
            next,
          },
        );
      // Without this a writer holding a location that was never current could leave a gap in the versions.
      if (!(await store.head(expected))) throw conflict(`${expected} does not exist (any more)`);
      await commitVersion(t, n + 1, next, () =>
        conflict(`${versionUri(t, n + 1)} was created by another writer`),
      );
    },

    async listTables(namespace) {
      // Lists every file of the namespace: fine for readers and tests, which are this catalog's users.
      const prefix = `${joinUri(warehouse, namespace)}/`;
      const names = new Set<string>();
      for await (const info of store.list(prefix)) {
        const match = /^([^/]+)\/metadata\/v\d+\.metadata\.json$/.exec(info.uri.slice(prefix.length));
        if (match?.[1]) names.add(match[1]);
      }
      return [...names].sort().map((name) => ({ namespace, name }));
    },
  };
}
