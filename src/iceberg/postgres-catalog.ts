import type pg from 'pg';
import { CommitConflictError, InputError } from '../errors.ts';
import { translatePgError } from '../postgres/errors.ts';
import { type Catalog, identString, type TableIdent } from './catalog.ts';

/**
 * Iceberg's JDBC catalog schema, as Iceberg's JdbcCatalog (schema V0) and pyiceberg's SqlCatalog create
 * it, so Spark, Trino, pyiceberg and DuckDB pointed at the same database see our tables. A V1 database
 * (JdbcCatalog with views, an extra nullable `iceberg_type` column) works too: rows we insert leave it
 * NULL, which V1 reads as a table.
 */
export const ICEBERG_TABLES_DDL = `CREATE TABLE IF NOT EXISTS iceberg_tables (
  catalog_name VARCHAR(255) NOT NULL,
  table_namespace VARCHAR(255) NOT NULL,
  table_name VARCHAR(255) NOT NULL,
  metadata_location VARCHAR(1000),
  previous_metadata_location VARCHAR(1000),
  PRIMARY KEY (catalog_name, table_namespace, table_name)
)`;

export const ICEBERG_NAMESPACE_PROPERTIES_DDL = `CREATE TABLE IF NOT EXISTS iceberg_namespace_properties (
  catalog_name VARCHAR(255) NOT NULL,
  namespace VARCHAR(255) NOT NULL,
  property_key VARCHAR(255),
  property_value VARCHAR(1000),
  PRIMARY KEY (catalog_name, namespace, property_key)
)`;

/** Anything that runs a parameterised query: a pg.Pool (concurrent commits need one) or a pg.Client. */
export type Queryable = Pick<pg.Pool, 'query' | 'options'>;

export type PostgresCatalogOptions = {
  /** The `catalog_name` of every row; other engines must be configured with the same name. */
  catalogName: string;
};

export type PostgresCatalog = Catalog & {
  readonly kind: 'postgres';
  readonly catalogName: string;
  /** Namespaces that have properties or tables, as JdbcCatalog lists them. */
  listNamespaces(): Promise<string[]>;
  /** Creates the two catalog tables if missing. Every other method calls it first; safe to call again. */
  ensureSchema(): Promise<void>;
};

/**
 * An Iceberg catalog in Postgres tables. A commit is one conditional UPDATE: Postgres row locking makes
 * concurrent swaps from the same expected location serialise, and the loser re-evaluates the WHERE
 * clause against the winner's row and updates nothing.
 */
export function createPostgresCatalog(pool: Queryable, options: PostgresCatalogOptions): PostgresCatalog {
  const { catalogName } = options;
  if (!catalogName) throw new InputError('createPostgresCatalog needs a non-empty catalogName');
  let schemaReady: Promise<void> | undefined;

  const run = async <T extends pg.QueryResultRow>(action: string, sql: string, values: unknown[]) => {
    await ensureSchema();
    try {
      return await pool.query<T>(sql, values);
    } catch (error) {
      throw translatePgError(error, pool, action);
    }
  };

  function ensureSchema(): Promise<void> {
    schemaReady ??= createSchema().catch((error: unknown) => {
      schemaReady = undefined;
      throw translatePgError(error, pool, 'create the Iceberg catalog tables');
    });
    return schemaReady;
  }

  async function createSchema() {
    for (const ddl of [ICEBERG_TABLES_DDL, ICEBERG_NAMESPACE_PROPERTIES_DDL]) {
      try {
        await pool.query(ddl);
      } catch (error) {
        // Two processes creating the same table at once: IF NOT EXISTS is not atomic in Postgres, the
        // loser fails on the catalog's unique index (23505), on the relation (42P07) or on its row type
        // (42710). It exists now.
        const code = (error as { code?: string }).code;
        if (code !== '23505' && code !== '42P07' && code !== '42710') throw error;
      }
    }
  }

  const currentRow = async (table: TableIdent) => {
    const result = await run<{ metadata_location: string | null }>(
      `read ${identString(table)}`,
      `SELECT metadata_location FROM iceberg_tables
        WHERE catalog_name = $1 AND table_namespace = $2 AND table_name = $3`,
      [catalogName, table.namespace, table.name],
    );
    return result.rows[0];
  };

  return {
    kind: 'postgres',
    catalogName,
    ensureSchema,

    async createNamespace(namespace) {
      // pyiceberg and JdbcCatalog mark a namespace without properties by this one row.
      await run(
        `create namespace ${namespace}`,
        `INSERT INTO iceberg_namespace_properties (catalog_name, namespace, property_key, property_value)
         VALUES ($1, $2, 'exists', 'true') ON CONFLICT DO NOTHING`,
        [catalogName, namespace],
      );
    },

    async listNamespaces() {
      const result = await run<{ namespace: string }>(
        'list namespaces',
        `SELECT namespace FROM iceberg_namespace_properties WHERE catalog_name = $1
         UNION SELECT table_namespace FROM iceberg_tables WHERE catalog_name = $1
         ORDER BY 1`,
        [catalogName],
      );
      return result.rows.map((r) => r.namespace);
    },

    async currentMetadataLocation(table) {
      return (await currentRow(table))?.metadata_location ?? undefined;
    },

    async createTable(table, metadataLocation) {
      const result = await run(
        `create table ${identString(table)}`,
        `INSERT INTO iceberg_tables
           (catalog_name, table_namespace, table_name, metadata_location, previous_metadata_location)
         VALUES ($1, $2, $3, $4, NULL) ON CONFLICT DO NOTHING`,
        [catalogName, table.namespace, table.name, metadataLocation],
      );
      if (result.rowCount === 1) return;
      const existing = await currentRow(table);
      throw new CommitConflictError(
        `Table ${identString(table)} already exists in catalog "${catalogName}" (metadata at ` +
          `${existing?.metadata_location ?? 'unknown'}); load it and commit to it instead of creating it`,
        { table: identString(table), catalogName, current: existing?.metadata_location },
      );
    },

    async swapMetadataLocation(table, expected, next) {
      const result = await run(
        `commit to ${identString(table)}`,
        `UPDATE iceberg_tables SET metadata_location = $5, previous_metadata_location = $4
          WHERE catalog_name = $1 AND table_namespace = $2 AND table_name = $3 AND metadata_location = $4`,
        [catalogName, table.namespace, table.name, expected, next],
      );
      if (result.rowCount === 1) return;
      const row = await currentRow(table);
      if (!row) {
        throw new InputError(
          `Cannot commit to ${identString(table)}: it does not exist in catalog "${catalogName}"; create it first`,
          { table: identString(table), catalogName },
        );
      }
      throw new CommitConflictError(
        `Commit to ${identString(table)} lost a race: expected metadata ${expected} but the catalog now ` +
          `points at ${row.metadata_location}; reload the table and retry`,
        { table: identString(table), catalogName, expected, current: row.metadata_location, next },
      );
    },

    async listTables(namespace) {
      const result = await run<{ table_name: string }>(
        `list tables of ${namespace}`,
        `SELECT table_name FROM iceberg_tables WHERE catalog_name = $1 AND table_namespace = $2
          ORDER BY table_name`,
        [catalogName, namespace],
      );
      return result.rows.map((r) => ({ namespace, name: r.table_name }));
    },

    async dropTable(table) {
      await run(
        `drop ${identString(table)}`,
        'DELETE FROM iceberg_tables WHERE catalog_name = $1 AND table_namespace = $2 AND table_name = $3',
        [catalogName, table.namespace, table.name],
      );
    },
  };
}
