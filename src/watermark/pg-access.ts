import type pg from 'pg';
import { ConfigError } from '../errors.ts';
import { describeTarget, translatePgError } from '../postgres/errors.ts';
import { quoteIdent } from './migrations.ts';
import { toWatermark, WATERMARK_COLUMNS, type WatermarkRow } from './pg-rows.ts';
import { checkSchemaName, checkTableName, unknownTable } from './rules.ts';
import type { Watermark } from './types.ts';

/** The watermark row as locked by a writing transaction. */
export type Locked = {
  cursor: Date;
  version: string;
  consecutive_failures: number;
  lease_token: string;
  lease_holder: string | null;
  lease_expires_at: Date | null;
};

export type PgAccess = ReturnType<typeof createPgAccess>;

/**
 * Statement helpers of the Postgres store: qualified table names, queries and transactions whose
 * driver errors are translated (unreachable server -> UnavailableError), and the row lock.
 */
export function createPgAccess(pool: pg.Pool, schema: string) {
  const S = quoteIdent(checkSchemaName(schema));
  const W = `${S}.watermarks`;
  const R = `${S}.watermark_runs`;
  const A = `${S}.watermark_audit`;
  // An idle connection the server drops (restart, failover) is emitted as an 'error' event on the pool,
  // which kills the process when nobody listens. pg already discards that client; the next query
  // opens a new one, and a real outage surfaces there as UnavailableError.
  if (pool.listenerCount('error') === 0) pool.on('error', () => {});

  const translate = (error: unknown) => {
    if ((error as { code?: unknown })?.code === '42P01')
      return new ConfigError(
        `the watermark tables do not exist in schema ${schema} of Postgres at ${describeTarget(pool)}; run the store's migrate() first (the CLI and PlanCycle do at start)`,
        { schema },
      );
    return translatePgError(error, pool);
  };

  async function query<T extends pg.QueryResultRow>(sql: string, params: unknown[] = []): Promise<T[]> {
    try {
      return (await pool.query<T>(sql, params)).rows;
    } catch (error) {
      throw translate(error);
    }
  }

  async function withClient<T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    let client: pg.PoolClient;
    try {
      client = await pool.connect();
    } catch (error) {
      throw translate(error);
    }
    let broken = false;
    try {
      return await work(client);
    } catch (error) {
      // Whatever the error, leave no transaction open on a connection that goes back to the pool.
      await client.query('ROLLBACK').catch(() => {
        broken = true;
      });
      throw translate(error);
    } finally {
      client.release(broken);
    }
  }

  const transaction = <T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T> =>
    withClient(async (client) => {
      await client.query('BEGIN');
      const result = await work(client);
      await client.query('COMMIT');
      return result;
    });

  async function missing(table: string): Promise<Error> {
    const rows = await query<{ table_name: string }>(`SELECT table_name FROM ${W} ORDER BY table_name`);
    return unknownTable(
      table,
      rows.map((r) => r.table_name),
    );
  }

  /** Locks the table's row for the rest of the transaction. */
  async function lockRow(client: pg.PoolClient, table: string): Promise<Locked> {
    const { rows } = await client.query<Locked>(
      `SELECT cursor, version::text, consecutive_failures, lease_token::text, lease_holder, lease_expires_at
       FROM ${W} WHERE table_name = $1 FOR UPDATE`,
      [table],
    );
    if (rows[0] === undefined) throw await missing(table);
    return rows[0];
  }

  async function get(table: string): Promise<Watermark> {
    const rows = await query<WatermarkRow>(`SELECT ${WATERMARK_COLUMNS} FROM ${W} WHERE table_name = $1`, [
      checkTableName(table),
    ]);
    if (rows[0] === undefined) throw await missing(table);
    return toWatermark(rows[0]);
  }

  return { W, R, A, query, withClient, transaction, missing, lockRow, get };
}
