import { CommitConflictError } from '../errors.ts';
import { type Catalog, identString, type TableIdent } from './catalog.ts';

/**
 * A catalog in a Map, with the same compare-and-swap contract as the Postgres and Glue catalogs.
 * Used by tests and by single-process local runs that keep no catalog between runs.
 */
export class MemoryCatalog implements Catalog {
  readonly kind = 'path' as const;
  private readonly namespaces = new Set<string>();
  private readonly tables = new Map<string, { ident: TableIdent; location: string }>();

  async createNamespace(namespace: string): Promise<void> {
    this.namespaces.add(namespace);
  }

  async currentMetadataLocation(table: TableIdent): Promise<string | undefined> {
    return this.tables.get(identString(table))?.location;
  }

  async createTable(table: TableIdent, metadataLocation: string): Promise<void> {
    const key = identString(table);
    if (this.tables.has(key)) throw new CommitConflictError(`table ${key} already exists`, { table: key });
    this.namespaces.add(table.namespace);
    this.tables.set(key, { ident: { ...table }, location: metadataLocation });
  }

  async swapMetadataLocation(table: TableIdent, expected: string, next: string): Promise<void> {
    const key = identString(table);
    const current = this.tables.get(key);
    if (current?.location !== expected)
      throw new CommitConflictError(
        `table ${key} changed during the commit: expected metadata ${expected}, found ${current?.location ?? 'no table'}; reload and retry`,
        { table: key, expected, found: current?.location },
      );
    current.location = next;
  }

  async listTables(namespace: string): Promise<TableIdent[]> {
    return [...this.tables.values()]
      .filter((t) => t.ident.namespace === namespace)
      .map((t) => ({ ...t.ident }));
  }

  async dropTable(table: TableIdent): Promise<void> {
    this.tables.delete(identString(table));
  }
}
