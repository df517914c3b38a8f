import { AlreadyExistsException, EntityNotFoundException } from '@aws-sdk/client-glue';
import { beforeEach, describe, expect, it } from 'vitest';
import {
  CommitConflictError,
  ConfigError,
  InputError,
  InvalidMetadataError,
  UnavailableError,
} from '../../../src/errors.ts';
import { createGlueCatalog } from '../../../src/iceberg/glue-catalog.ts';
import { rejection } from '../../support/rejection.ts';
import { FakeGlue } from './fake-glue.ts';

/** What an operator meets when Glue says no: each refusal reaches them as what it is, never as another. */
const t = { namespace: 'cold', name: 'silver_trades' };
const loc = (v: number) => `s3://wh/cold/silver_trades/metadata/0000${v}-u.metadata.json`;
const denied = (action: string) =>
  Object.assign(new Error(`not authorized to perform: glue:${action}`), { name: 'AccessDeniedException' });
const notFound = () => new EntityNotFoundException({ message: 'gone', $metadata: {} });

let glue: FakeGlue;
beforeEach(() => {
  glue = new FakeGlue();
});

/** Another writer updates `t` just before our next UpdateTable: its VersionId moves on, `parameters` set. */
function anotherWriterFirst(parameters: Record<string, string>, then = () => {}) {
  glue.beforeUpdate = () => {
    glue.beforeUpdate = undefined;
    const row = glue.databases.get('cold')?.get(t.name);
    if (row) {
      row.Parameters = { ...row.Parameters, ...parameters };
      row.VersionId = String(Number(row.VersionId) + 1);
    }
    then();
  };
}

describe('Glue catalog: refusals', () => {
  it('refuses a table whose type is not Iceberg even when it carries a metadata_location', async () => {
    glue.putTable('cold', {
      Name: t.name,
      Parameters: { table_type: 'DELTA', metadata_location: loc(1) },
    });
    const error = await rejection<InvalidMetadataError>(
      createGlueCatalog(glue.client).currentMetadataLocation(t),
    );
    expect(error).toBeInstanceOf(InvalidMetadataError);
    expect(error.message).toBe(
      `Glue table cold.silver_trades (Glue database "cold") is not an Iceberg table (table_type=DELTA, metadata_location=${loc(1)}); drop it or choose another table name`,
    );
    expect(error.details).toEqual({ table: 'cold.silver_trades', tableType: 'DELTA' });
  });

  it('does not take a database it may not read for a missing one (no CreateDatabase follows)', async () => {
    glue.failures.set('GetDatabase', [denied('GetDatabase')]);
    const error = await rejection<ConfigError>(createGlueCatalog(glue.client).createNamespace('cold'));
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.message).toBe(
      'Glue refused to GetDatabase cold: not authorized to perform: glue:GetDatabase. Grant the role glue:GetDatabase on it',
    );
    expect(error.details).toEqual({ action: 'GetDatabase cold', code: 'AccessDeniedException' });
    expect(error.cause).toBeInstanceOf(Error);
    expect(glue.commands()).toEqual(['GetDatabase']);
  });

  it('takes a database another writer created in between as created', async () => {
    glue.failures.set('CreateDatabase', [new AlreadyExistsException({ message: 'exists', $metadata: {} })]);
    await createGlueCatalog(glue.client).createNamespace('cold');
    expect(glue.commands()).toEqual(['GetDatabase', 'CreateDatabase']);
    glue.failures.set('CreateDatabase', [denied('CreateDatabase')]);
    glue.databases.clear();
    await expect(createGlueCatalog(glue.client).createNamespace('cold')).rejects.toBeInstanceOf(ConfigError);
  });

  it('passes a refused UpdateTable through as itself, not as a lost race to retry', async () => {
    const catalog = createGlueCatalog(glue.client);
    await catalog.createNamespace('cold');
    await catalog.createTable(t, loc(1));
    glue.failures.set('UpdateTable', [denied('UpdateTable')]);
    const error = await rejection<Error>(catalog.swapMetadataLocation(t, loc(1), loc(2)));
    expect(error).toBeInstanceOf(ConfigError);
    expect(error).not.toBeInstanceOf(CommitConflictError);
    expect(await catalog.currentMetadataLocation(t)).toBe(loc(1));
  });

  it('says a table dropped during the commit was dropped', async () => {
    const catalog = createGlueCatalog(glue.client);
    await catalog.createNamespace('cold');
    await catalog.createTable(t, loc(1));
    glue.failures.set('UpdateTable', [notFound()]);
    const error = await rejection<InputError>(catalog.swapMetadataLocation(t, loc(1), loc(2)));
    expect(error).toBeInstanceOf(InputError);
    expect(error.message).toBe(
      'Cannot commit to cold.silver_trades (Glue database "cold"): the table was dropped during the commit',
    );
    expect(error.details).toEqual({ table: 'cold.silver_trades' });
  });

  it('names the versions of a lost race', async () => {
    const catalog = createGlueCatalog(glue.client);
    await catalog.createNamespace('cold');
    await catalog.createTable(t, loc(1));
    anotherWriterFirst({ metadata_location: loc(3) });
    const error = await rejection<CommitConflictError>(catalog.swapMetadataLocation(t, loc(1), loc(2)));
    expect(error).toBeInstanceOf(CommitConflictError);
    expect(error.message).toContain(`(now ${loc(3)}); reload the table and retry`);
    expect(error.details).toMatchObject({ table: 'cold.silver_trades', expected: loc(1), next: loc(2) });
    expect(error.cause).toBeInstanceOf(Error);
  });

  it('maps throttling with the action and the code, as a retryable outage', async () => {
    glue.failures.set('GetTables', [
      Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' }),
    ]);
    const error = await rejection<UnavailableError>(createGlueCatalog(glue.client).listTables('cold'));
    expect(error).toBeInstanceOf(UnavailableError);
    expect(error.message).toBe(
      'Glue is unavailable or throttling (ThrottlingException: Rate exceeded) while trying to GetTables cold; retry later',
    );
    expect(error.details).toEqual({ action: 'GetTables cold', code: 'ThrottlingException' });
  });
});

describe('Glue catalog: what is not there', () => {
  it('lists no table in a database that does not exist', async () => {
    expect(await createGlueCatalog(glue.client).listTables('cold')).toEqual([]);
  });

  it('drops a table that is already gone without complaint, and reports a refused drop', async () => {
    const catalog = createGlueCatalog(glue.client);
    await catalog.createNamespace('cold');
    await catalog.dropTable?.(t);
    await catalog.createTable(t, loc(1));
    glue.failures.set('DeleteTable', [denied('DeleteTable')]);
    await expect(catalog.dropTable?.(t)).rejects.toBeInstanceOf(ConfigError);
    expect(await catalog.currentMetadataLocation(t)).toBe(loc(1));
  });
});

describe('Glue catalog: what the operator is told', () => {
  const table = 'cold.silver_trades (Glue database "cold")';
  /** Each action Glue may refuse, set up so that it is the one refused. */
  const actions: [string, string, (c: ReturnType<typeof createGlueCatalog>) => Promise<unknown>][] = [
    ['GetTable', `GetTable ${table}`, (c) => c.currentMetadataLocation(t)],
    ['CreateTable', `CreateTable ${table}`, (c) => c.createTable(t, loc(2))],
    ['UpdateTable', `UpdateTable ${table}`, (c) => c.swapMetadataLocation(t, loc(1), loc(2))],
    ['DeleteTable', `DeleteTable ${table}`, async (c) => c.dropTable?.(t)],
    ['CreateDatabase', 'CreateDatabase k2_other', (c) => c.createNamespace('other')],
    ['GetTables', 'GetTables k2_cold', (c) => c.listTables('cold')],
  ];

  it.each(actions)(
    'a refused %s names the action, the table and the grant it needs',
    async (action, what, run) => {
      const databaseName = (ns: string) =>
        action === 'CreateDatabase' || action === 'GetTables' ? `k2_${ns}` : ns;
      const catalog = createGlueCatalog(glue.client, { databaseName });
      await catalog.createNamespace('cold');
      if (action === 'UpdateTable' || action === 'DeleteTable') await catalog.createTable(t, loc(1));
      const cause = denied(action);
      glue.failures.set(action, [cause]);
      const error = await rejection<ConfigError>(run(catalog));
      expect(error).toBeInstanceOf(ConfigError);
      expect(error.message).toBe(
        `Glue refused to ${what}: not authorized to perform: glue:${action}. Grant the role glue:${action} on it`,
      );
      expect(error.details).toEqual({
        action: what.split(' (')[0]?.replace(/ cold\.silver_trades$/, ''),
        code: 'AccessDeniedException',
      });
      expect(error.cause).toBe(cause);
    },
  );

  it("a second create: a conflict naming the table, with Glue's refusal as its cause", async () => {
    const catalog = createGlueCatalog(glue.client);
    await catalog.createNamespace('cold');
    await catalog.createTable(t, loc(1));
    const error = await rejection<CommitConflictError>(catalog.createTable(t, loc(2)));
    expect(error.message).toBe(
      `Table ${table} already exists; load it and commit to it instead of creating it`,
    );
    expect(error.details).toEqual({ table: 'cold.silver_trades' });
    expect(error.cause).toBeInstanceOf(AlreadyExistsException);
  });

  it('a create in a database that is not there names the table and the database', async () => {
    const error = await rejection<InputError>(
      createGlueCatalog(glue.client, { databaseName: 'k2_prod' }).createTable(t, loc(1)),
    );
    expect(error).toBeInstanceOf(InputError);
    expect(error.details).toEqual({ table: 'cold.silver_trades', database: 'k2_prod' });
    expect(error.cause).toBeInstanceOf(EntityNotFoundException);
  });

  it('a commit to a table Glue does not have, or from a location it no longer points at', async () => {
    const catalog = createGlueCatalog(glue.client);
    await catalog.createNamespace('cold');
    const missing = await rejection<InputError>(catalog.swapMetadataLocation(t, loc(1), loc(2)));
    expect(missing.message).toBe(
      `Cannot commit to ${table}: the table does not exist in Glue; create it first`,
    );
    expect(missing.details).toEqual({ table: 'cold.silver_trades' });
    await catalog.createTable(t, loc(2));
    const stale = await rejection<CommitConflictError>(catalog.swapMetadataLocation(t, loc(1), loc(3)));
    expect(stale.message).toBe(
      `Commit to ${table} lost a race: expected metadata ${loc(1)} but Glue points at ${loc(2)}; reload the table and retry`,
    );
    expect(stale.details).toEqual({
      table: 'cold.silver_trades',
      expected: loc(1),
      current: loc(2),
      next: loc(3),
    });
  });

  it('a lost race whose winner cannot be read back says so', async () => {
    const catalog = createGlueCatalog(glue.client);
    await catalog.createNamespace('cold');
    await catalog.createTable(t, loc(1));
    // Another writer updates the table first, and Glue then stops answering GetTable.
    anotherWriterFirst({}, () => glue.failures.set('GetTable', [denied('GetTable')]));
    const error = await rejection<CommitConflictError>(catalog.swapMetadataLocation(t, loc(1), loc(2)));
    expect(error).toBeInstanceOf(CommitConflictError);
    expect(error.message).toMatch(
      /lost a race: Glue refused version \S+ as stale \(now unknown\); reload the table and retry$/,
    );
  });

  it('a table that is neither Iceberg nor located says both are unset', async () => {
    glue.putTable('cold', { Name: t.name, Parameters: {} });
    const error = await rejection<InvalidMetadataError>(
      createGlueCatalog(glue.client).currentMetadataLocation(t),
    );
    expect(error.message).toBe(
      `Glue table ${table} is not an Iceberg table (table_type=unset, metadata_location=unset); drop it or choose another table name`,
    );
  });
});
