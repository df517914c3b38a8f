import { describe, expect, it } from 'vitest';
import { CommitConflictError, InputError, UnavailableError } from '../../../src/errors.ts';
import { MemoryObjectStore } from '../../../src/iceberg/memory-store.ts';
import { createPathCatalog } from '../../../src/iceberg/path-catalog.ts';
import { createPostgresCatalog } from '../../../src/iceberg/postgres-catalog.ts';
import { rejection } from '../../support/rejection.ts';

const bytes = (text: string) => new TextEncoder().encode(text);
const W = 'mem://wh';
const version = (name: string, n: number) => `${W}/cold/${name}/metadata/v${n}.metadata.json`;

function setup() {
  const store = new MemoryObjectStore();
  return { store, catalog: createPathCatalog(store, W) };
}

describe('path catalog guards', () => {
  it('refuses to create a table that already has versions, even from its own v1 location', async () => {
    const { store, catalog } = setup();
    const t = { namespace: 'cold', name: 'silver_trades' };
    await store.put(version('silver_trades', 1), bytes('{"v":1}'));
    await catalog.createTable(t, version('silver_trades', 1));
    await store.put(`${W}/cold/silver_trades/metadata/next.metadata.json`, bytes('{"v":2}'));
    await catalog.swapMetadataLocation(
      t,
      version('silver_trades', 1),
      `${W}/cold/silver_trades/metadata/next.metadata.json`,
    );
    // A writer that lost track (restarted from scratch, say) creates again: its v1 is the first version
    // of a history that has moved on, and must not be taken for the table it finds.
    const error = await rejection<Error>(catalog.createTable(t, version('silver_trades', 1)));
    expect(error).toBeInstanceOf(CommitConflictError);
    expect(error.message).toBe(
      `Table cold.silver_trades already exists at ${version('silver_trades', 2)}; load it and commit to it instead`,
    );
    expect((error as CommitConflictError).details).toEqual({
      table: 'cold.silver_trades',
      current: version('silver_trades', 2),
    });
    expect(await catalog.currentMetadataLocation(t)).toBe(version('silver_trades', 2));
  });

  it('refuses to create a table another writer created, from metadata of its own', async () => {
    const { store, catalog } = setup();
    const t = { namespace: 'cold', name: 'silver_trades' };
    await store.put(version('silver_trades', 1), bytes('{"v":1}'));
    await catalog.createTable(t, version('silver_trades', 1));
    const mine = `${W}/cold/silver_trades/metadata/mine.metadata.json`;
    await store.put(mine, bytes('{"v":"mine"}'));
    const error = await rejection<Error>(catalog.createTable(t, mine));
    expect(error).toBeInstanceOf(CommitConflictError);
    expect(error.message).toBe(
      `Table cold.silver_trades already exists at ${version('silver_trades', 1)}; load it and commit to it instead`,
    );
    expect(new TextDecoder().decode(await store.get(version('silver_trades', 1)))).toBe('{"v":1}');
  });

  it('refuses a create that another writer beat to the first version after it looked, naming the table', async () => {
    const first = version('silver_trades', 1);
    // The other writer's v1 lands between our listing (no version yet) and our conditional create.
    class RacedStore extends MemoryObjectStore {
      override async put(uri: string, body: Uint8Array, options?: { ifNoneMatch?: boolean }) {
        if (uri === first && options?.ifNoneMatch) await super.put(uri, bytes('{"v":"theirs"}'), options);
        return super.put(uri, body, options);
      }
    }
    const store = new RacedStore();
    const catalog = createPathCatalog(store, W);
    const t = { namespace: 'cold', name: 'silver_trades' };
    const mine = `${W}/cold/silver_trades/metadata/mine.metadata.json`;
    await store.put(mine, bytes('{"v":"mine"}'));

    const error = await rejection<Error>(catalog.createTable(t, mine));
    expect(error).toBeInstanceOf(CommitConflictError);
    expect(error.message).toBe('Table cold.silver_trades was created by another writer at the same time');
    expect((error as CommitConflictError).details).toEqual({ table: 'cold.silver_trades' });
    expect(new TextDecoder().decode(await store.get(first))).toBe('{"v":"theirs"}');
  });

  it("refuses a commit from another table's metadata, even one whose path has the same shape", async () => {
    const { store, catalog } = setup();
    for (const name of ['ohlcv_1m', 'ohlcv_5m']) {
      await store.put(version(name, 1), bytes(`{"t":"${name}"}`));
      await catalog.createTable({ namespace: 'cold', name }, version(name, 1));
    }
    await store.put(`${W}/cold/ohlcv_1m/metadata/next.metadata.json`, bytes('{}'));
    const error = await rejection<InputError>(
      catalog.swapMetadataLocation(
        { namespace: 'cold', name: 'ohlcv_1m' },
        version('ohlcv_5m', 1),
        `${W}/cold/ohlcv_1m/metadata/next.metadata.json`,
      ),
    );
    expect(error).toBeInstanceOf(InputError);
    expect(error.message).toBe(
      `"${version('ohlcv_5m', 1)}" is not a version file of cold.ohlcv_1m in the path catalog; expected ${W}/cold/ohlcv_1m/metadata/v<N>.metadata.json (use currentMetadataLocation to learn it)`,
    );
    expect(error.details).toEqual({ table: 'cold.ohlcv_1m', uri: version('ohlcv_5m', 1) });
    expect(await catalog.currentMetadataLocation({ namespace: 'cold', name: 'ohlcv_1m' })).toBe(
      version('ohlcv_1m', 1),
    );
  });

  it('names a lost race with the table, both locations and what to do', async () => {
    const { store, catalog } = setup();
    const t = { namespace: 'cold', name: 'silver_trades' };
    await store.put(version('silver_trades', 1), bytes('{}'));
    await catalog.createTable(t, version('silver_trades', 1));
    await store.delete(version('silver_trades', 1));
    const next = `${W}/cold/silver_trades/metadata/n.metadata.json`;
    await store.put(next, bytes('{}'));
    const error = await rejection<CommitConflictError>(
      catalog.swapMetadataLocation(t, version('silver_trades', 1), next),
    );
    expect(error).toBeInstanceOf(CommitConflictError);
    expect(error.message).toBe(
      `Commit to cold.silver_trades lost a race: ${version('silver_trades', 1)} does not exist (any more); reload the table and retry`,
    );
    expect(error.details).toEqual({
      table: 'cold.silver_trades',
      expected: version('silver_trades', 1),
      next,
    });
  });

  it('lists the tables of a namespace by their version files only, with any name and any version number', async () => {
    const { store } = setup();
    await store.put(version('silver_trades', 12), bytes('{}'));
    await store.put(version('a', 3), bytes('{}'));
    // Not tables: a half-written file, and a version file deeper down.
    await store.put(`${W}/cold/tmp_only/metadata/v1.metadata.json.tmp`, bytes('{}'));
    await store.put(`${W}/cold/x/data/metadata/v1.metadata.json`, bytes('{}'));
    const names = (await createPathCatalog(store, W).listTables('cold')).map((t) => t.name);
    expect(names).toEqual(['a', 'silver_trades']);
  });

  it('takes a warehouse with trailing slashes as the same warehouse', async () => {
    const { store } = setup();
    await store.put(version('silver_trades', 1), bytes('{}'));
    const catalog = createPathCatalog(store, `${W}//`);
    expect(catalog.warehouseUri).toBe(W);
    expect(await catalog.currentMetadataLocation({ namespace: 'cold', name: 'silver_trades' })).toBe(
      version('silver_trades', 1),
    );
  });
});

type Pool = Parameters<typeof createPostgresCatalog>[0];
const pgError = (code: string, message = `error ${code}`) => Object.assign(new Error(message), { code });

/** A Postgres that answers every query with no rows, and fails the catalog's DDL with `ddlFailures` in turn. */
function fakePool(ddlFailures: Error[]) {
  const statements: string[] = [];
  const pool = {
    options: { host: 'db.example', port: 5432, database: 'k2' },
    query: async (sql: string) => {
      statements.push(sql);
      const failure = /^CREATE TABLE/.test(sql) ? ddlFailures.shift() : undefined;
      if (failure) throw failure;
      return { rows: [], rowCount: 0 };
    },
  };
  return { pool: pool as unknown as Pool, statements };
}

describe('Postgres catalog guards', () => {
  // IF NOT EXISTS is not atomic: two processes creating the catalog's tables at once, the loser fails on
  // the unique index, the relation or its row type. The tables exist then, and the catalog goes on.
  it.each(['23505', '42P07', '42710'])(
    'takes a concurrent creation of its tables (%s) as done',
    async (code) => {
      const { pool, statements } = fakePool([pgError(code), pgError(code)]);
      const catalog = createPostgresCatalog(pool, { catalogName: 'k2' });
      expect(
        await catalog.currentMetadataLocation({ namespace: 'cold', name: 'silver_trades' }),
      ).toBeUndefined();
      expect(statements.filter((s) => s.startsWith('CREATE TABLE'))).toHaveLength(2);
    },
  );

  it('passes any other failure to create its tables through, and tries again on the next call', async () => {
    const { pool, statements } = fakePool([pgError('42501', 'permission denied for schema public')]);
    const catalog = createPostgresCatalog(pool, { catalogName: 'k2' });
    const t = { namespace: 'cold', name: 'silver_trades' };
    await expect(catalog.currentMetadataLocation(t)).rejects.toThrow('permission denied for schema public');
    const unavailable = fakePool([pgError('57P03', 'the database system is starting up')]);
    await expect(
      createPostgresCatalog(unavailable.pool, { catalogName: 'k2' }).currentMetadataLocation(t),
    ).rejects.toThrow(
      'is unavailable while trying to create the Iceberg catalog tables (the database system is starting up)',
    );
    // Not a failure remembered for ever: once Postgres lets it, the same catalog creates its tables.
    expect(await catalog.currentMetadataLocation(t)).toBeUndefined();
    expect(statements.filter((s) => s.startsWith('CREATE TABLE'))).toHaveLength(3);
  });

  it('says what it was doing when Postgres went away, operation by operation', async () => {
    const gone = pgError('08006', 'connection to server was lost');
    const pool = {
      options: { host: 'db.example', port: 5432, database: 'k2' },
      query: async (sql: string) => {
        if (/^CREATE TABLE/.test(sql)) return { rows: [], rowCount: 0 };
        throw gone;
      },
    } as unknown as Pool;
    const catalog = createPostgresCatalog(pool, { catalogName: 'k2' });
    const t = { namespace: 'cold', name: 'silver_trades' };
    const loc = 's3://wh/cold/silver_trades/metadata/00001-a.metadata.json';
    const doing = async (operation: Promise<unknown>) => {
      const error = (await operation.then(
        () => undefined,
        (e: unknown) => e,
      )) as Error;
      expect(error).toBeInstanceOf(UnavailableError);
      return /while trying to (.*) \(connection to server was lost\)/.exec(error.message)?.[1];
    };
    expect(await doing(catalog.createNamespace('cold'))).toBe('create namespace cold');
    expect(await doing(catalog.listNamespaces())).toBe('list namespaces');
    expect(await doing(catalog.currentMetadataLocation(t))).toBe('read cold.silver_trades');
    expect(await doing(catalog.createTable(t, loc))).toBe('create table cold.silver_trades');
    expect(await doing(catalog.swapMetadataLocation(t, loc, `${loc}2`))).toBe('commit to cold.silver_trades');
    expect(await doing(catalog.listTables('cold'))).toBe('list tables of cold');
    expect(await doing((async () => catalog.dropTable?.(t))())).toBe('drop cold.silver_trades');
  });

  it('refuses to start without a catalog name: tables of every catalog would mix', () => {
    const pool = { query: async () => ({ rows: [] }) } as unknown as Pool;
    expect(() => createPostgresCatalog(pool, { catalogName: '' })).toThrow(
      new InputError('createPostgresCatalog needs a non-empty catalogName'),
    );
  });
});
