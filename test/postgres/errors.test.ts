import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { ConfigError, InputError, UnavailableError } from '../../src/errors.ts';
import { describeTarget, translatePgError } from '../../src/postgres/errors.ts';

// Pools are created but never connected: only their options are read.
const pool = new pg.Pool({ connectionString: 'postgres://offload:hunter2-secret@db.internal:6543/k2' });
const withCode = (message: string, code: string) => Object.assign(new Error(message), { code });

describe('translatePgError', () => {
  it('names host, port and database, never user or password', () => {
    expect(describeTarget(pool)).toBe('db.internal:6543/k2');
    const split = new pg.Pool({ host: '10.0.0.7', port: 5433, database: 'w', password: 'pw-xyz' });
    expect(describeTarget(split)).toBe('10.0.0.7:5433/w');
  });

  it('turns unreachable and overloaded servers into a retryable UnavailableError', () => {
    const refused = Object.assign(new AggregateError([], ''), { code: 'ECONNREFUSED' });
    for (const cause of [
      refused,
      withCode('getaddrinfo ENOTFOUND db.internal', 'ENOTFOUND'),
      withCode('the database system is starting up', '57P03'),
      withCode('sorry, too many clients already', '53300'),
      new Error('Connection terminated unexpectedly'),
    ]) {
      const error = translatePgError(cause, pool);
      expect(error).toBeInstanceOf(UnavailableError);
      expect((error as UnavailableError).retryable).toBe(true);
      expect((error as Error).message).toMatch(/^Postgres at db\.internal:6543\/k2 is unavailable \(.+\)/);
    }
  });

  it('reports rejected credentials as a ConfigError with the password scrubbed', () => {
    const error = translatePgError(
      withCode('password authentication failed (tried hunter2-secret)', '28P01'),
      pool,
    ) as ConfigError;
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.message).toContain('db.internal:6543');
    expect(JSON.stringify(error.toJSON())).not.toContain('hunter2-secret');
  });

  it('reports a database that does not exist as a ConfigError naming it and what to do', () => {
    const error = translatePgError(withCode('database "k2" does not exist', '3D000'), pool) as ConfigError;
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.message).toBe(
      'Postgres at db.internal:6543/k2: database "k2" does not exist; check the database name at the end of DATABASE_URL, or create it (CREATE DATABASE ...)',
    );
  });

  it('passes our own errors and SQL errors through unchanged', () => {
    const ours = new InputError('bad table');
    expect(translatePgError(ours, pool)).toBe(ours);
    const sql = withCode('syntax error at or near "SELEC"', '42601');
    expect(translatePgError(sql, pool)).toBe(sql);
  });
});
