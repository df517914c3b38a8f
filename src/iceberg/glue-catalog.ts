import {
  CreateDatabaseCommand,
  CreateTableCommand,
  DeleteTableCommand,
  GetDatabaseCommand,
  GetTableCommand,
  GetTablesCommand,
  type GlueClient,
  type Table,
  type TableInput,
  UpdateTableCommand,
} from '@aws-sdk/client-glue';
import {
  CommitConflictError,
  ConfigError,
  InputError,
  InvalidMetadataError,
  OffloadError,
  UnavailableError,
} from '../errors.ts';
import { type Catalog, identString, type TableIdent } from './catalog.ts';
import { glueColumns } from './glue-columns.ts';
import type { TableMetadata } from './metadata.ts';
import { isTransientAwsError } from './s3-store.ts';

/** Only `send` is used, so tests can replace it at the SDK edge. */
export type GlueClientLike = Pick<GlueClient, 'send'>;

export type GlueCatalogOptions = {
  /**
   * The Glue database of a namespace: one fixed name for every namespace (e.g. per deployment stage), a
   * mapping function, or by default the namespace itself.
   */
  databaseName?: string | ((namespace: string) => string);
  /** The AWS account id owning the Data Catalog, when it is not the caller's. */
  catalogId?: string;
  /**
   * Skip Glue's archived table version on each commit (Iceberg's `glue.skip-archive`, default true):
   * every 15-minute commit would otherwise add a table version until Glue's version quota is hit.
   */
  skipArchive?: boolean;
};

/** Parameter names Athena, EMR Spark and Iceberg's GlueCatalog read on an Iceberg table. */
export const GLUE_ICEBERG_PARAMETERS = {
  tableType: 'table_type',
  tableTypeValue: 'ICEBERG',
  metadataLocation: 'metadata_location',
  previousMetadataLocation: 'previous_metadata_location',
} as const;
const P = GLUE_ICEBERG_PARAMETERS;

/** `s3://b/wh/cold/t/metadata/00003-x.metadata.json` -> `s3://b/wh/cold/t`: the table's location. */
export function tableLocationOf(metadataLocation: string): string {
  const match = /^(.*)\/metadata\/[^/]+$/.exec(metadataLocation);
  return match?.[1] ?? metadataLocation.replace(/\/[^/]*$/, '');
}

const errorName = (error: unknown) => (error as { name?: string } | null)?.name;
const TRANSIENT = new Set([
  'ThrottlingException',
  'InternalServiceException',
  'OperationTimeoutException',
  'ResourceNotReadyException',
  'TimeoutError',
]);

const isTransient = (error: unknown) => isTransientAwsError(error) || TRANSIENT.has(errorName(error) ?? '');

/**
 * Iceberg tables registered in the AWS Glue Data Catalog the way Iceberg's own GlueCatalog does it, so
 * Athena and EMR read them. A commit is GetTable, a check of `metadata_location`, and UpdateTable with the
 * table's `VersionId`: Glue refuses the update (ConcurrentModificationException) if anyone else updated
 * the table in between.
 */
export function createGlueCatalog(glue: GlueClientLike, options: GlueCatalogOptions = {}): Catalog {
  const { catalogId, skipArchive = true } = options;
  const databaseOf = (namespace: string) =>
    typeof options.databaseName === 'function'
      ? options.databaseName(namespace)
      : (options.databaseName ?? namespace);
  const where = (t: TableIdent) => `${identString(t)} (Glue database "${databaseOf(t.namespace)}")`;

  function mapError(error: unknown, action: string, t?: TableIdent): Error {
    if (error instanceof OffloadError) return error;
    const name = errorName(error) ?? 'Error';
    const message = error instanceof Error ? error.message : String(error);
    // The action names its database when there is no table: `GetDatabase cold`, `GetTables cold`.
    const what = t ? `${action} ${where(t)}` : action;
    if (isTransient(error)) {
      return new UnavailableError(
        `Glue is unavailable or throttling (${name}: ${message}) while trying to ${what}; retry later`,
        { action, code: name },
        { cause: error },
      );
    }
    if (name === 'AccessDeniedException') {
      return new ConfigError(
        `Glue refused to ${what}: ${message}. Grant the role glue:${action.split(' ')[0]} on it`,
        { action, code: name },
        { cause: error },
      );
    }
    return error instanceof Error ? error : new Error(message);
  }

  async function getTable(t: TableIdent): Promise<Table | undefined> {
    try {
      const response = await glue.send(
        new GetTableCommand({ CatalogId: catalogId, DatabaseName: databaseOf(t.namespace), Name: t.name }),
      );
      return response.Table;
    } catch (error) {
      if (errorName(error) === 'EntityNotFoundException') return undefined;
      throw mapError(error, 'GetTable', t);
    }
  }

  function metadataLocationOf(t: TableIdent, table: Table): string {
    const params = table.Parameters ?? {};
    const type = params[P.tableType];
    const location = params[P.metadataLocation];
    if (type?.toUpperCase() !== P.tableTypeValue || !location) {
      throw new InvalidMetadataError(
        `Glue table ${where(t)} is not an Iceberg table (table_type=${type ?? 'unset'}, metadata_location=` +
          `${location ?? 'unset'}); drop it or choose another table name`,
        { table: identString(t), tableType: type },
      );
    }
    return location;
  }

  /**
   * Keeps what other writers (owners, descriptions) set; changes our parameters, and the columns to the
   * new metadata's schema so Athena and the Glue console show the table as it is now.
   */
  function updatedInput(
    table: Table,
    next: string,
    expected: string,
    metadata: TableMetadata | undefined,
  ): TableInput {
    return {
      Name: table.Name,
      Description: table.Description,
      Owner: table.Owner,
      Retention: table.Retention,
      PartitionKeys: table.PartitionKeys,
      TableType: 'EXTERNAL_TABLE',
      StorageDescriptor: {
        ...table.StorageDescriptor,
        Location: tableLocationOf(next),
        ...(metadata ? { Columns: glueColumns(metadata) } : {}),
      },
      Parameters: {
        ...table.Parameters,
        [P.tableType]: P.tableTypeValue,
        [P.metadataLocation]: next,
        [P.previousMetadataLocation]: expected,
      },
    };
  }

  return {
    kind: 'glue',

    // The stack (or the operator) creates the database; the functions are granted GetDatabase, not
    // CreateDatabase, so an existing database must not be created again.
    async createNamespace(namespace) {
      try {
        await glue.send(new GetDatabaseCommand({ CatalogId: catalogId, Name: databaseOf(namespace) }));
        return;
      } catch (error) {
        if (errorName(error) !== 'EntityNotFoundException')
          throw mapError(error, `GetDatabase ${databaseOf(namespace)}`);
      }
      try {
        await glue.send(
          new CreateDatabaseCommand({ CatalogId: catalogId, DatabaseInput: { Name: databaseOf(namespace) } }),
        );
      } catch (error) {
        if (errorName(error) === 'AlreadyExistsException') return;
        throw mapError(error, `CreateDatabase ${databaseOf(namespace)}`);
      }
    },

    async currentMetadataLocation(t) {
      const table = await getTable(t);
      return table ? metadataLocationOf(t, table) : undefined;
    },

    async createTable(t, metadataLocation, metadata) {
      try {
        await glue.send(
          new CreateTableCommand({
            CatalogId: catalogId,
            DatabaseName: databaseOf(t.namespace),
            TableInput: {
              Name: t.name,
              TableType: 'EXTERNAL_TABLE',
              Parameters: { [P.tableType]: P.tableTypeValue, [P.metadataLocation]: metadataLocation },
              StorageDescriptor: {
                Location: tableLocationOf(metadataLocation),
                ...(metadata ? { Columns: glueColumns(metadata) } : {}),
              },
            },
          }),
        );
      } catch (error) {
        const name = errorName(error);
        if (name === 'AlreadyExistsException') {
          throw new CommitConflictError(
            `Table ${where(t)} already exists; load it and commit to it instead of creating it`,
            { table: identString(t) },
            { cause: error },
          );
        }
        if (name === 'EntityNotFoundException') {
          throw new InputError(
            `Cannot create ${where(t)}: the Glue database does not exist; create the namespace first`,
            { table: identString(t), database: databaseOf(t.namespace) },
            { cause: error },
          );
        }
        throw mapError(error, 'CreateTable', t);
      }
    },

    async swapMetadataLocation(t, expected, next, metadata) {
      const table = await getTable(t);
      if (!table) {
        throw new InputError(
          `Cannot commit to ${where(t)}: the table does not exist in Glue; create it first`,
          {
            table: identString(t),
          },
        );
      }
      const current = metadataLocationOf(t, table);
      if (current !== expected) {
        throw new CommitConflictError(
          `Commit to ${where(t)} lost a race: expected metadata ${expected} but Glue points at ${current}; ` +
            'reload the table and retry',
          { table: identString(t), expected, current, next },
        );
      }
      try {
        await glue.send(
          new UpdateTableCommand({
            CatalogId: catalogId,
            DatabaseName: databaseOf(t.namespace),
            TableInput: updatedInput(table, next, expected, metadata),
            VersionId: table.VersionId,
            SkipArchive: skipArchive,
          }),
        );
      } catch (error) {
        // An update retried by the SDK after a lost response is refused as "concurrent" although the first
        // attempt landed; `next` is unique to this commit, so finding it current means we won.
        const now = await getTable(t).catch(() => undefined);
        if (now?.Parameters?.[P.metadataLocation] === next) return;
        if (errorName(error) === 'ConcurrentModificationException') {
          throw new CommitConflictError(
            `Commit to ${where(t)} lost a race: Glue refused version ${table.VersionId} as stale ` +
              `(now ${now?.Parameters?.[P.metadataLocation] ?? 'unknown'}); reload the table and retry`,
            { table: identString(t), expected, next, versionId: table.VersionId },
            { cause: error },
          );
        }
        if (errorName(error) === 'EntityNotFoundException') {
          throw new InputError(`Cannot commit to ${where(t)}: the table was dropped during the commit`, {
            table: identString(t),
          });
        }
        throw mapError(error, 'UpdateTable', t);
      }
    },

    async listTables(namespace) {
      const tables: TableIdent[] = [];
      let nextToken: string | undefined;
      do {
        let page: { TableList?: Table[]; NextToken?: string };
        try {
          page = await glue.send(
            new GetTablesCommand({
              CatalogId: catalogId,
              DatabaseName: databaseOf(namespace),
              NextToken: nextToken,
            }),
          );
        } catch (error) {
          if (errorName(error) === 'EntityNotFoundException') return [];
          throw mapError(error, `GetTables ${databaseOf(namespace)}`);
        }
        for (const table of page.TableList ?? []) {
          if (table.Name && table.Parameters?.[P.tableType]?.toUpperCase() === P.tableTypeValue) {
            tables.push({ namespace, name: table.Name });
          }
        }
        nextToken = page.NextToken;
      } while (nextToken);
      return tables.sort((a, b) => a.name.localeCompare(b.name));
    },

    async dropTable(t) {
      try {
        await glue.send(
          new DeleteTableCommand({
            CatalogId: catalogId,
            DatabaseName: databaseOf(t.namespace),
            Name: t.name,
          }),
        );
      } catch (error) {
        if (errorName(error) === 'EntityNotFoundException') return;
        throw mapError(error, 'DeleteTable', t);
      }
    },
  };
}
