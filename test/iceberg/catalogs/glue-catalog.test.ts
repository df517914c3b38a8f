import { randomBytes } from 'node:crypto';
import { GetTableCommand, GlueClient, ThrottlingException } from '@aws-sdk/client-glue';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { tableConfigSchema } from '../../../src/config/schema.ts';
import {
  CommitConflictError,
  ConfigError,
  InputError,
  InvalidMetadataError,
  isRetryable,
  UnavailableError,
} from '../../../src/errors.ts';
import { evolveTable } from '../../../src/iceberg/evolve.ts';
import { createGlueCatalog, tableLocationOf } from '../../../src/iceberg/glue-catalog.ts';
import { MemoryObjectStore } from '../../../src/iceberg/memory-store.ts';
import { createTable } from '../../../src/iceberg/table.ts';
import { wantedFromConfig } from '../../../src/pipeline/evolve-table.ts';
import { type Moto, motoAvailability, skipMoto, startMoto } from '../../support/moto.ts';
import { ticksConfig } from '../parquet-fixtures.ts';
import { FakeGlue } from './fake-glue.ts';

const t = { namespace: 'cold', name: 'bronze_trades_kraken' };
const loc = (v: number) => `s3://wh/cold/bronze_trades_kraken/metadata/0000${v}-u.metadata.json`;

describe('Glue catalog at the SDK edge', () => {
  let glue: FakeGlue;
  beforeEach(() => {
    glue = new FakeGlue();
  });

  it('creates the database idempotently and registers an Iceberg table as Athena and Spark expect', async () => {
    const catalog = createGlueCatalog(glue.client);
    await catalog.createNamespace('cold');
    await catalog.createNamespace('cold');
    await catalog.createTable(t, loc(1));

    expect(glue.commands()).toEqual(['GetDatabase', 'CreateDatabase', 'GetDatabase', 'CreateTable']);
    expect(glue.sent[1]).toEqual({ command: 'CreateDatabase', input: { DatabaseInput: { Name: 'cold' } } });
    expect(glue.sent[3]).toEqual({
      command: 'CreateTable',
      input: {
        DatabaseName: 'cold',
        TableInput: {
          Name: 'bronze_trades_kraken',
          TableType: 'EXTERNAL_TABLE',
          Parameters: { table_type: 'ICEBERG', metadata_location: loc(1) },
          StorageDescriptor: { Location: 's3://wh/cold/bronze_trades_kraken' },
        },
      },
    });
    expect(await catalog.currentMetadataLocation(t)).toBe(loc(1));
  });

  it('creates a table in an existing database without CreateDatabase, which the functions are not granted', async () => {
    glue.databases.set('cold', new Map());
    glue.failures.set('CreateDatabase', [
      Object.assign(new Error('not authorized to perform: glue:CreateDatabase'), {
        name: 'AccessDeniedException',
      }),
    ]);
    const store = new MemoryObjectStore();
    const deps = { store, catalog: createGlueCatalog(glue.client) };
    const created = await createTable(deps, { table: t, config: ticksConfig(), location: 's3://wh/cold/t' });
    expect(created.created).toBe(true);
    expect(glue.commands()).toEqual(['GetTable', 'GetDatabase', 'CreateTable']);
  });

  it('leaves no metadata file behind when Glue refuses to create the table', async () => {
    glue.databases.set('cold', new Map());
    glue.failures.set('CreateTable', [
      Object.assign(new Error('not authorized to perform: glue:CreateTable'), {
        name: 'AccessDeniedException',
      }),
    ]);
    const store = new MemoryObjectStore();
    const deps = { store, catalog: createGlueCatalog(glue.client) };
    const create = createTable(deps, { table: t, config: ticksConfig(), location: 's3://wh/cold/t' });
    await expect(create).rejects.toBeInstanceOf(ConfigError);
    await expect(create).rejects.toThrow(/Grant the role glue:CreateTable/);
    expect([...store.objects.keys()]).toEqual([]);
  });

  it('refuses a second create as a conflict, and a create in a missing database clearly', async () => {
    const catalog = createGlueCatalog(glue.client);
    await catalog.createNamespace('cold');
    await catalog.createTable(t, loc(1));
    await expect(catalog.createTable(t, loc(2))).rejects.toBeInstanceOf(CommitConflictError);
    expect(await catalog.currentMetadataLocation(t)).toBe(loc(1));

    const missing = catalog.createTable({ namespace: 'nowhere', name: 'x' }, loc(1));
    await expect(missing).rejects.toBeInstanceOf(InputError);
    await expect(missing).rejects.toThrow(
      /Glue database "nowhere"\): the Glue database does not exist; create the namespace first/,
    );
  });

  it('commits with UpdateTable carrying the VersionId it read, keeping what other writers set', async () => {
    glue.putTable('cold', {
      Name: t.name,
      VersionId: '7',
      Owner: 'spark',
      TableType: 'EXTERNAL_TABLE',
      Parameters: { table_type: 'iceberg', metadata_location: loc(1), 'write.format.default': 'parquet' },
      StorageDescriptor: {
        Location: 's3://wh/cold/bronze_trades_kraken',
        Columns: [{ Name: 'price', Type: 'double' }],
      },
      DatabaseName: 'cold',
    });
    const catalog = createGlueCatalog(glue.client);
    await catalog.swapMetadataLocation(t, loc(1), loc(2));

    expect(glue.commands()).toEqual(['GetTable', 'UpdateTable']);
    expect(glue.sent[0]?.input).toEqual({ DatabaseName: 'cold', Name: t.name });
    expect(glue.sent[1]?.input).toEqual({
      DatabaseName: 'cold',
      VersionId: '7',
      SkipArchive: true,
      TableInput: {
        Name: t.name,
        Owner: 'spark',
        TableType: 'EXTERNAL_TABLE',
        StorageDescriptor: {
          Location: 's3://wh/cold/bronze_trades_kraken',
          Columns: [{ Name: 'price', Type: 'double' }],
        },
        Parameters: {
          table_type: 'ICEBERG',
          metadata_location: loc(2),
          previous_metadata_location: loc(1),
          'write.format.default': 'parquet',
        },
      },
    });
    expect(await catalog.currentMetadataLocation(t)).toBe(loc(2));
  });

  it('refuses a commit from a stale location without touching the table', async () => {
    const catalog = createGlueCatalog(glue.client);
    await catalog.createNamespace('cold');
    await catalog.createTable(t, loc(1));
    await catalog.swapMetadataLocation(t, loc(1), loc(2));
    glue.sent.length = 0;

    const stale = await catalog.swapMetadataLocation(t, loc(1), loc(3)).catch((e: unknown) => e);
    expect(stale).toBeInstanceOf(CommitConflictError);
    expect(isRetryable(stale)).toBe(true);
    expect((stale as Error).message).toContain(`Glue points at ${loc(2)}`);
    expect(glue.commands()).toEqual(['GetTable']);
  });

  it('turns a stale VersionId refused by Glue into CommitConflictError, keeping the other commit', async () => {
    const catalog = createGlueCatalog(glue.client);
    await catalog.createNamespace('cold');
    await catalog.createTable(t, loc(1));
    // Another writer commits between our GetTable and our UpdateTable.
    glue.beforeUpdate = () => {
      glue.beforeUpdate = undefined;
      const table = glue.databases.get('cold')?.get(t.name);
      if (table?.Parameters) {
        table.Parameters.metadata_location = loc(5);
        table.VersionId = '2';
      }
    };
    const error = await catalog.swapMetadataLocation(t, loc(1), loc(2)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CommitConflictError);
    expect((error as Error).message).toMatch(/refused version 1 as stale \(now .*00005-u/);
    expect(await catalog.currentMetadataLocation(t)).toBe(loc(5));
  });

  it('lets exactly one of several writers racing from the same location win', async () => {
    const catalog = createGlueCatalog(glue.client);
    await catalog.createNamespace('cold');
    await catalog.createTable(t, loc(1));
    const results = await Promise.allSettled(
      [2, 3, 4, 5].map((v) => catalog.swapMetadataLocation(t, loc(1), loc(v))),
    );
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    for (const r of results)
      if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(CommitConflictError);
  });

  it('treats an update whose response was lost but which landed as committed', async () => {
    const catalog = createGlueCatalog(glue.client);
    await catalog.createNamespace('cold');
    await catalog.createTable(t, loc(1));
    glue.loseNextUpdateResponse = Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
    await catalog.swapMetadataLocation(t, loc(1), loc(2));
    expect(await catalog.currentMetadataLocation(t)).toBe(loc(2));
  });

  it('maps throttling to a retryable UnavailableError and a missing table to a clear error', async () => {
    const catalog = createGlueCatalog(glue.client);
    await catalog.createNamespace('cold');
    glue.failures.set('GetTable', [
      new ThrottlingException({ message: 'Rate exceeded', $metadata: { httpStatusCode: 400 } }),
    ]);
    const throttled = await catalog.currentMetadataLocation(t).catch((e: unknown) => e);
    expect(throttled).toBeInstanceOf(UnavailableError);
    expect((throttled as Error).message).toMatch(
      /ThrottlingException: Rate exceeded.*cold\.bronze_trades_kraken/,
    );

    expect(await catalog.currentMetadataLocation(t)).toBeUndefined();
    const missing = catalog.swapMetadataLocation(t, loc(1), loc(2));
    await expect(missing).rejects.toBeInstanceOf(InputError);
    await expect(missing).rejects.toThrow(/does not exist in Glue; create it first/);
  });

  it('reports an unreachable Glue endpoint as a retryable UnavailableError', async () => {
    const unreachable = new GlueClient({
      endpoint: 'http://127.0.0.1:1',
      region: 'us-east-1',
      credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
      maxAttempts: 1,
    });
    const error = await createGlueCatalog(unreachable)
      .currentMetadataLocation(t)
      .catch((e: unknown) => e);
    unreachable.destroy();
    expect(error).toBeInstanceOf(UnavailableError);
    expect(isRetryable(error)).toBe(true);
  });

  it('refuses to treat a non-Iceberg Glue table as one', async () => {
    glue.putTable('cold', {
      Name: t.name,
      TableType: 'EXTERNAL_TABLE',
      Parameters: { classification: 'csv' },
    });
    const error = createGlueCatalog(glue.client).currentMetadataLocation(t);
    await expect(error).rejects.toBeInstanceOf(InvalidMetadataError);
    await expect(error).rejects.toThrow(/is not an Iceberg table \(table_type=unset/);
  });

  it('lists only Iceberg tables, across pages, and maps namespaces to a configured database', async () => {
    glue.pageSize = 2;
    const catalog = createGlueCatalog(glue.client, { databaseName: 'k2_prod' });
    await catalog.createNamespace('cold');
    for (const name of ['e', 'd', 'c', 'b', 'a'])
      await catalog.createTable({ namespace: 'cold', name }, loc(1));
    glue.putTable('k2_prod', { Name: 'csv_table', Parameters: { classification: 'csv' } });
    expect(glue.databases.has('k2_prod')).toBe(true);
    const names = (await catalog.listTables('cold')).map((x) => x.name);
    expect(names).toEqual(['a', 'b', 'c', 'd', 'e']);
    expect(glue.commands().filter((c) => c === 'GetTables')).toHaveLength(3);
    await catalog.dropTable?.({ namespace: 'cold', name: 'a' });
    await catalog.dropTable?.({ namespace: 'cold', name: 'a' });
    expect((await catalog.listTables('cold')).map((x) => x.name)).toEqual(['b', 'c', 'd', 'e']);
  });

  it('derives the table location from a metadata location', () => {
    expect(tableLocationOf('s3://b/wh/cold/t/metadata/v3.metadata.json')).toBe('s3://b/wh/cold/t');
    expect(tableLocationOf('file:///tmp/wh/cold/t/metadata/00001-x.metadata.json')).toBe(
      'file:///tmp/wh/cold/t',
    );
  });
});

const SUITE = 'Glue catalog against moto';
describe.skipIf(skipMoto(motoAvailability(), SUITE))(SUITE, () => {
  let moto: Moto;
  let client: GlueClient;
  const db = `k2_${randomBytes(4).toString('hex')}`;

  beforeAll(async () => {
    moto = await startMoto();
    client = new GlueClient(moto.clientConfig);
  });
  afterAll(async () => {
    client?.destroy();
    await moto?.stop();
  });

  it('creates, commits to and lists an Iceberg table on a Glue API', async () => {
    const catalog = createGlueCatalog(client);
    const table = { namespace: db, name: 'gold_ohlcv_1h' };
    await catalog.createNamespace(db);
    await catalog.createNamespace(db);
    await catalog.createTable(table, loc(1));
    await expect(catalog.createTable(table, loc(1))).rejects.toBeInstanceOf(CommitConflictError);
    await catalog.swapMetadataLocation(table, loc(1), loc(2));
    await expect(catalog.swapMetadataLocation(table, loc(1), loc(3))).rejects.toBeInstanceOf(
      CommitConflictError,
    );

    expect(await catalog.currentMetadataLocation(table)).toBe(loc(2));
    expect(await catalog.listTables(db)).toEqual([table]);
    const raw = await client.send(new GetTableCommand({ DatabaseName: db, Name: 'gold_ohlcv_1h' }));
    expect(raw.Table?.TableType).toBe('EXTERNAL_TABLE');
    expect(raw.Table?.Parameters).toMatchObject({
      table_type: 'ICEBERG',
      metadata_location: loc(2),
      previous_metadata_location: loc(1),
    });
    expect(raw.Table?.StorageDescriptor?.Location).toBe('s3://wh/cold/bronze_trades_kraken');
  });

  it("keeps the Glue table's columns on the current Iceberg schema through schema changes, as Athena reads them", async () => {
    const deps = { store: new MemoryObjectStore(), catalog: createGlueCatalog(client) };
    const table = { namespace: db, name: 'ticks' };
    await createTable(deps, { table, config: ticksConfig(), location: `s3://wh/${db}/ticks` });
    const columns = async () => {
      const raw = await client.send(new GetTableCommand({ DatabaseName: db, Name: 'ticks' }));
      return (raw.Table?.StorageDescriptor?.Columns ?? []).map((c) => [
        c.Name,
        c.Type,
        c.Parameters?.['iceberg.field.id'],
        c.Parameters?.['iceberg.field.optional'],
        c.Parameters?.['iceberg.field.current'],
      ]);
    };
    expect(await columns()).toEqual([
      ['id', 'bigint', '1', 'false', 'true'],
      ['ts', 'timestamp', '2', 'false', 'true'],
      ['sym', 'string', '3', 'false', 'true'],
      ['px', 'decimal(18,4)', '4', 'false', 'true'],
      ['qty', 'int', '5', 'true', 'true'],
      ['tags', 'array<string>', '6', 'false', 'true'],
    ]);
    const base = ticksConfig();
    const evolved = tableConfigSchema.parse({
      ...base,
      columns: [
        ...base.columns.map((c) =>
          c.name === 'qty' ? { ...c, name: 'size', type: 'Nullable(Int64)', renamedFrom: 'qty' } : c,
        ),
        { name: 'venue', type: 'String' },
      ],
    });
    const result = await evolveTable(deps, table, wantedFromConfig(evolved));
    expect(result.changes.map((c) => c.kind)).toEqual(['rename-column', 'promote-type', 'add-column']);
    expect(await columns()).toEqual([
      ['id', 'bigint', '1', 'false', 'true'],
      ['ts', 'timestamp', '2', 'false', 'true'],
      ['sym', 'string', '3', 'false', 'true'],
      ['px', 'decimal(18,4)', '4', 'false', 'true'],
      ['size', 'bigint', '5', 'true', 'true'],
      ['tags', 'array<string>', '6', 'false', 'true'],
      ['venue', 'string', '8', 'true', 'true'],
      ['qty', 'int', '5', 'true', 'false'],
    ]);
  });
});
