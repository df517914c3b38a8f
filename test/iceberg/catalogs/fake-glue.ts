import {
  AlreadyExistsException,
  ConcurrentModificationException,
  EntityNotFoundException,
  type GlueClient,
  type Table,
  type TableInput,
} from '@aws-sdk/client-glue';

type Sent = { command: string; input: Record<string, unknown> };

/**
 * An in-memory Glue Data Catalog behind the SDK client's `send`, the edge our catalog talks to. Like the
 * real service it refuses an UpdateTable whose VersionId is stale, which moto does not.
 */
export class FakeGlue {
  readonly sent: Sent[] = [];
  readonly databases = new Map<string, Map<string, Table>>();
  /** Errors to throw instead of answering, per command name, in order. */
  readonly failures = new Map<string, Error[]>();
  /** Runs just before an UpdateTable is applied: a place for another writer to sneak in. */
  beforeUpdate: (() => void) | undefined;
  /** Applies UpdateTable and then throws this, like a response lost on the way back. */
  loseNextUpdateResponse: Error | undefined;
  pageSize = 100;

  get client(): Pick<GlueClient, 'send'> {
    return { send: this.send } as unknown as Pick<GlueClient, 'send'>;
  }

  commands(): string[] {
    return this.sent.map((s) => s.command);
  }

  putTable(database: string, table: Table) {
    this.database(database).set(table.Name ?? '', { VersionId: '1', ...table });
  }

  private database(name: string) {
    let db = this.databases.get(name);
    if (!db) {
      db = new Map();
      this.databases.set(name, db);
    }
    return db;
  }

  private existing(input: Record<string, unknown>) {
    const db = this.databases.get(String(input.DatabaseName));
    if (!db) throw notFound(`Database ${String(input.DatabaseName)} not found.`);
    return db;
  }

  private readonly send = async (command: { input: Record<string, unknown> }) => {
    const name = command.constructor.name.replace(/Command$/, '');
    const input = structuredClone(command.input);
    this.sent.push({ command: name, input });
    await Promise.resolve();
    const failure = this.failures.get(name)?.shift();
    if (failure) throw failure;
    switch (name) {
      case 'CreateDatabase': {
        const dbName = String((input.DatabaseInput as { Name: string }).Name);
        if (this.databases.has(dbName)) throw already(`Database already exists.`);
        this.database(dbName);
        return {};
      }
      case 'GetDatabase': {
        const dbName = String(input.Name);
        if (!this.databases.has(dbName)) throw notFound(`Database ${dbName} not found.`);
        return { Database: { Name: dbName } };
      }
      case 'CreateTable': {
        const db = this.existing(input);
        const tableInput = input.TableInput as TableInput;
        if (db.has(tableInput.Name ?? '')) throw already(`Table already exists.`);
        db.set(tableInput.Name ?? '', { ...tableInput, Name: tableInput.Name, VersionId: '1' } as Table);
        return {};
      }
      case 'GetTable': {
        const table = this.existing(input).get(String(input.Name));
        if (!table) throw notFound(`Table ${String(input.Name)} not found.`);
        return { Table: structuredClone(table) };
      }
      case 'UpdateTable': {
        this.beforeUpdate?.();
        const db = this.existing(input);
        const tableInput = input.TableInput as TableInput;
        const table = db.get(tableInput.Name ?? '');
        if (!table) throw notFound(`Table ${tableInput.Name} not found.`);
        if (input.VersionId !== undefined && input.VersionId !== table.VersionId) {
          throw new ConcurrentModificationException({
            message: 'Update table failed due to concurrent modifications.',
            $metadata: { httpStatusCode: 400 },
          });
        }
        db.set(tableInput.Name ?? '', {
          ...(tableInput as Table),
          VersionId: String(Number(table.VersionId) + 1),
        });
        const lost = this.loseNextUpdateResponse;
        this.loseNextUpdateResponse = undefined;
        if (lost) throw lost;
        return {};
      }
      case 'GetTables': {
        // In the order the tables were created: Glue documents no order for GetTables.
        const all = [...this.existing(input).values()];
        const start = Number(input.NextToken ?? 0);
        const end = start + this.pageSize;
        return {
          TableList: structuredClone(all.slice(start, end)),
          NextToken: end < all.length ? String(end) : undefined,
        };
      }
      case 'DeleteTable': {
        const db = this.existing(input);
        if (!db.delete(String(input.Name))) throw notFound(`Table ${String(input.Name)} not found.`);
        return {};
      }
      default:
        throw new Error(`FakeGlue does not implement ${name}`);
    }
  };
}

const notFound = (message: string) =>
  new EntityNotFoundException({ message, $metadata: { httpStatusCode: 400 } });
const already = (message: string) =>
  new AlreadyExistsException({ message, $metadata: { httpStatusCode: 400 } });
