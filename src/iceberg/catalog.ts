/**
 * Where an Iceberg table's current metadata file is recorded. Every catalog we support (Iceberg's JDBC
 * schema on Postgres, AWS Glue, a path-only version hint) reduces a commit to one atomic compare-and-swap
 * of the metadata location; the metadata itself is written by our Iceberg module before the swap.
 */
import type { TableMetadata } from './metadata.ts';

export type TableIdent = { namespace: string; name: string };

export interface Catalog {
  readonly kind: 'postgres' | 'glue' | 'path';
  createNamespace(namespace: string): Promise<void>;
  /** The current metadata location, or undefined when the table does not exist. */
  currentMetadataLocation(table: TableIdent): Promise<string | undefined>;
  /**
   * Registers a new table. Throws CommitConflictError when it already exists. `metadata` (what is at
   * the location) lets a catalog that also describes the columns (Glue) record them.
   */
  createTable(table: TableIdent, metadataLocation: string, metadata?: TableMetadata): Promise<void>;
  /**
   * Points the table at `next` only if it still points at `expected`; otherwise throws
   * CommitConflictError (retryable: reload, rebuild the commit, try again). `metadata` is `next`'s.
   */
  swapMetadataLocation(
    table: TableIdent,
    expected: string,
    next: string,
    metadata?: TableMetadata,
  ): Promise<void>;
  listTables(namespace: string): Promise<TableIdent[]>;
  dropTable?(table: TableIdent): Promise<void>;
  /**
   * Where the metadata file that follows `current` (undefined: the first) should be written, for catalogs
   * whose commit is the file name itself (the path catalog: `metadata/v<N+1>.metadata.json`). A writer
   * that uses it must put the file with `{ ifNoneMatch: true }` and treat a refused put as
   * CommitConflictError. Catalogs that record any location do not define it.
   */
  nextMetadataLocation?(table: TableIdent, current: string | undefined): string;
}

export const identString = (t: TableIdent) => `${t.namespace}.${t.name}`;
