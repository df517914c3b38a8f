import type pg from 'pg';
import { toInstant } from '../plan/batch.ts';
import { applyMigrations, quoteIdent } from './migrations.ts';
import { translatePgError } from './pg-errors.ts';
import {
  AUDIT_COLUMNS,
  type AuditRow,
  iso,
  RUN_COLUMNS,
  type RunRow,
  toAudit,
  toRun,
  toWatermark,
  WATERMARK_COLUMNS,
  type WatermarkRow,
} from './pg-rows.ts';
import {
  backwardsRefused,
  checkHolder,
  checkSchemaName,
  checkTableName,
  checkToken,
  checkTtl,
  conflict,
  DEFAULT_SCHEMA,
  expiryOf,
  leaseHeld,
  normalizeAdvance,
  normalizeFailure,
  normalizeHistoryQuery,
  normalizeLimit,
  normalizeNoop,
  normalizeReconcile,
  normalizeSetCursor,
  staleLease,
  unknownTable,
} from './rules.ts';
import type { WatermarkStore } from './types.ts';

export type * from './types.ts';

export type PostgresWatermarkStoreOptions = { schema?: string; clock?: () => Date };

type Locked = {
  cursor: Date;
  version: string;
  consecutive_failures: number;
  lease_token: string;
  lease_holder: string | null;
  lease_expires_at: Date | null;
};

/**
 * The watermark store on Postgres. Every cursor change is one compare-and-set on the table's row,
 * fenced by the lease token, in the same transaction as its history (or audit) row.
 */
export function createPostgresWatermarkStore(
  pool: pg.Pool,
  options: PostgresWatermarkStoreOptions = {},
): WatermarkStore {
  const S = quoteIdent(checkSchemaName(options.schema ?? DEFAULT_SCHEMA));
  const W = `${S}.watermarks`;
  const R = `${S}.watermark_runs`;
  const A = `${S}.watermark_audit`;
  const clock = options.clock ?? (() => new Date());
  const now = () => clock().toISOString();
  // An idle connection the server drops (restart, failover) is emitted as an 'error' event on the pool,
  // which kills the process when nobody listens. pg already discards that client; the next query
  // opens a new one, and a real outage surfaces there as UnavailableError.
  if (pool.listenerCount('error') === 0) pool.on('error', () => {});

  async function query<T extends pg.QueryResultRow>(sql: string, params: unknown[] = []): Promise<T[]> {
    try {
      return (await pool.query<T>(sql, params)).rows;
    } catch (error) {
      throw translatePgError(error, pool);
    }
  }

  async function transaction<T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    let client: pg.PoolClient;
    try {
      client = await pool.connect();
    } catch (error) {
      throw translatePgError(error, pool);
    }
    let broken = false;
    try {
      await client.query('BEGIN');
      const result = await work(client);
      await client.query('COMMIT');
      return result;
    } catch (error) {
      await client.query('ROLLBACK').catch(() => {
        broken = true;
      });
      throw translatePgError(error, pool);
    } finally {
      client.release(broken);
    }
  }

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

  async function get(table: string) {
    const rows = await query<WatermarkRow>(`SELECT ${WATERMARK_COLUMNS} FROM ${W} WHERE table_name = $1`, [
      checkTableName(table),
    ]);
    if (rows[0] === undefined) throw await missing(table);
    return toWatermark(rows[0]);
  }

  return {
    async migrate() {
      let client: pg.PoolClient;
      try {
        client = await pool.connect();
      } catch (error) {
        throw translatePgError(error, pool);
      }
      try {
        await applyMigrations(client, options.schema ?? DEFAULT_SCHEMA);
      } catch (error) {
        throw translatePgError(error, pool);
      } finally {
        client.release();
      }
    },

    async ensureTables(tables) {
      const unique = new Map<string, string>();
      for (const t of tables) {
        const table = checkTableName(t.table);
        const cursor = toInstant(t.initialCursor, 'initialCursor');
        if (!unique.has(table)) unique.set(table, cursor);
      }
      if (unique.size === 0) return { created: [] };
      const rows = await query<{ table_name: string }>(
        `INSERT INTO ${W} (table_name, cursor, created_at, updated_at)
         SELECT t, c, $3, $3 FROM unnest($1::text[], $2::timestamptz[]) AS u (t, c)
         ON CONFLICT (table_name) DO NOTHING RETURNING table_name`,
        [[...unique.keys()], [...unique.values()], now()],
      );
      const created = new Set(rows.map((r) => r.table_name));
      return { created: [...unique.keys()].filter((t) => created.has(t)) };
    },

    get,

    async list() {
      const rows = await query<WatermarkRow>(`SELECT ${WATERMARK_COLUMNS} FROM ${W} ORDER BY table_name`);
      return rows.map(toWatermark);
    },

    async acquireLease(table, holder, ttlSeconds) {
      const t = checkTableName(table);
      const who = checkHolder(holder);
      const ttl = checkTtl(ttlSeconds);
      // The row lock taken by UPDATE makes the check-and-take atomic; a loser re-reads the new holder.
      // The loop only repeats when the lease was released between our two statements.
      for (let attempt = 0; ; attempt++) {
        const at = clock();
        const taken = await query<{ lease_token: string; lease_expires_at: Date }>(
          `UPDATE ${W} SET lease_token = lease_token + 1, lease_holder = $2, lease_expires_at = $4,
             status = 'running', updated_at = $3
           WHERE table_name = $1 AND (lease_holder IS NULL OR lease_expires_at <= $3 OR lease_holder = $2)
           RETURNING lease_token::text, lease_expires_at`,
          [t, who, at.toISOString(), expiryOf(at, ttl)],
        );
        if (taken[0] !== undefined)
          return { acquired: true, token: taken[0].lease_token, expiresAt: iso(taken[0].lease_expires_at) };
        const held = await query<{ lease_holder: string | null; lease_expires_at: Date | null }>(
          `SELECT lease_holder, lease_expires_at FROM ${W} WHERE table_name = $1`,
          [t],
        );
        if (held[0] === undefined) throw await missing(t);
        const { lease_holder, lease_expires_at } = held[0];
        if ((lease_holder !== null && lease_expires_at !== null) || attempt >= 3)
          return {
            acquired: false,
            holder: lease_holder ?? '(unknown)',
            expiresAt: iso(lease_expires_at ?? at),
          };
      }
    },

    async releaseLease(table, token) {
      const t = checkTableName(table);
      const tok = checkToken(token, 'token');
      const rows = await query(
        `UPDATE ${W} SET lease_holder = NULL, lease_expires_at = NULL, updated_at = $3,
           status = CASE WHEN status = 'running' THEN 'idle' ELSE status END
         WHERE table_name = $1 AND lease_token = $2 AND lease_holder IS NOT NULL RETURNING 1`,
        [t, tok, now()],
      );
      if (rows.length > 0) return { released: true };
      await get(t);
      return { released: false };
    },

    async advance(input) {
      const b = normalizeAdvance(input);
      for (let attempt = 0; ; attempt++) {
        const at = now();
        // One statement: the compare-and-set and its history row commit together or not at all.
        const advanced = await query<{ version: string }>(
          `WITH up AS (
             UPDATE ${W} SET cursor = $3, version = version + 1, status = 'ok', last_batch_id = $4,
               last_success_at = $5, last_checked_at = $5, last_rows = $6, last_duration_ms = $7,
               consecutive_failures = 0, last_error_name = NULL, last_error_message = NULL, updated_at = $5,
               lease_holder = CASE WHEN $8::boolean THEN NULL ELSE lease_holder END,
               lease_expires_at = CASE WHEN $8::boolean THEN NULL ELSE lease_expires_at END
             WHERE table_name = $1 AND cursor = $2 AND lease_token = $9 AND lease_holder IS NOT NULL
               AND cursor < $3
             RETURNING table_name, version
           )
           INSERT INTO ${R} (table_name, batch_id, window_start, window_end, rows, files, bytes, duration_ms,
             outcome, lease_token, recorded_at)
           SELECT table_name, $4, $2, $3, $6, $10, $11, $7, $12, $9, $5 FROM up
           RETURNING (SELECT version::text FROM up) AS version`,
          [
            b.table,
            b.windowStart,
            b.windowEnd,
            b.batchId,
            at,
            b.rows,
            b.durationMs,
            b.releaseLease,
            b.leaseToken,
            b.files,
            b.bytes,
            b.outcome,
          ],
        );
        if (advanced[0] !== undefined) return { result: 'advanced', version: Number(advanced[0].version) };

        const seen = await query<{
          cursor: Date;
          version: string;
          last_batch_id: string | null;
          lease_token: string;
          lease_holder: string | null;
          succeeded: boolean;
        }>(
          `SELECT cursor, version::text, last_batch_id, lease_token::text, lease_holder,
             EXISTS (SELECT 1 FROM ${R} r WHERE r.table_name = w.table_name AND r.batch_id = $2
                     AND r.outcome IN ('committed', 'reconciled')) AS succeeded
           FROM ${W} w WHERE table_name = $1`,
          [b.table, b.batchId],
        );
        const row = seen[0];
        if (row === undefined) throw await missing(b.table);
        const cursor = iso(row.cursor);
        if ((cursor === b.windowEnd && row.last_batch_id === b.batchId) || row.succeeded)
          return { result: 'replayed', version: Number(row.version) };
        const held = row.lease_holder !== null && row.lease_token === b.leaseToken;
        if (!held) throw staleLease(b.table, b.leaseToken, row.lease_token, row.lease_holder);
        // The row changed between the two statements into one our CAS accepts (a concurrent reset): retry.
        if (cursor !== b.windowStart || attempt >= 3) throw conflict(b.table, b, cursor);
      }
    },

    async reconcile(input) {
      const r = normalizeReconcile(input);
      return transaction(async (client) => {
        const row = await lockRow(client, r.table);
        const previousCursor = iso(row.cursor);
        if (Date.parse(previousCursor) >= Date.parse(r.windowEnd))
          return { result: 'unchanged' as const, previousCursor };
        if (row.lease_holder === null || row.lease_token !== r.leaseToken)
          throw staleLease(r.table, r.leaseToken, row.lease_token, row.lease_holder);
        const at = now();
        await client.query(
          `UPDATE ${W} SET cursor = $2, version = version + 1, status = 'ok', last_batch_id = $3,
             last_success_at = $4, last_checked_at = $4, last_rows = $5, last_duration_ms = NULL,
             consecutive_failures = 0, last_error_name = NULL, last_error_message = NULL, updated_at = $4
           WHERE table_name = $1`,
          [r.table, r.windowEnd, r.batchId, at, r.rows],
        );
        await client.query(
          `INSERT INTO ${R} (table_name, batch_id, window_start, window_end, rows, outcome, note, lease_token,
             recorded_at) VALUES ($1, $2, $3, $4, $5, 'reconciled', $6, $7, $8)`,
          [r.table, r.batchId, previousCursor, r.windowEnd, r.rows, r.note, r.leaseToken, at],
        );
        return { result: 'reconciled' as const, previousCursor };
      });
    },

    async recordFailure(input) {
      const f = normalizeFailure(input);
      return transaction(async (client) => {
        const row = await lockRow(client, f.table);
        const at = now();
        await client.query(
          `INSERT INTO ${R} (table_name, batch_id, window_start, window_end, duration_ms, outcome, error_name,
             error_message, lease_token, recorded_at) VALUES ($1, $2, $3, $4, $5, 'failed', $6, $7, $8, $9)`,
          [
            f.table,
            f.batchId,
            f.windowStart,
            f.windowEnd,
            f.durationMs,
            f.error.name,
            f.error.message,
            f.leaseToken,
            at,
          ],
        );
        // A fenced-out attempt is history, not the table's state: the current holder owns that.
        if (f.leaseToken !== null && f.leaseToken !== row.lease_token) {
          return { counted: false, consecutiveFailures: row.consecutive_failures };
        }
        const release = f.leaseToken !== null && row.lease_holder !== null;
        const { rows } = await client.query<{ n: number }>(
          `UPDATE ${W} SET consecutive_failures = consecutive_failures + 1, status = 'failed',
             last_error_name = $2, last_error_message = $3, last_checked_at = $4, updated_at = $4,
             lease_holder = CASE WHEN $5::boolean THEN NULL ELSE lease_holder END,
             lease_expires_at = CASE WHEN $5::boolean THEN NULL ELSE lease_expires_at END
           WHERE table_name = $1 RETURNING consecutive_failures AS n`,
          [f.table, f.error.name, f.error.message, at, release],
        );
        return { counted: true, consecutiveFailures: rows[0]?.n ?? 0 };
      });
    },

    async recordNoop(input) {
      const n = normalizeNoop(input);
      return transaction(async (client) => {
        const row = await lockRow(client, n.table);
        const at = now();
        await client.query(
          `INSERT INTO ${R} (table_name, rows, outcome, note, lease_token, recorded_at)
           VALUES ($1, 0, 'noop', $2, $3, $4)`,
          [n.table, n.reason, n.leaseToken, at],
        );
        if (row.lease_token !== n.leaseToken) return { recorded: false };
        await client.query(
          `UPDATE ${W} SET last_checked_at = $2, updated_at = $2, lease_holder = NULL, lease_expires_at = NULL,
             status = CASE WHEN consecutive_failures > 0 THEN 'failed' ELSE 'ok' END
           WHERE table_name = $1`,
          [n.table, at],
        );
        return { recorded: true };
      });
    },

    async setCursor(input) {
      const s = normalizeSetCursor(input);
      return transaction(async (client) => {
        const row = await lockRow(client, s.table);
        const at = clock();
        if (row.lease_holder !== null && row.lease_expires_at !== null && row.lease_expires_at > at)
          throw leaseHeld(s.table, row.lease_holder, iso(row.lease_expires_at));
        const previousCursor = iso(row.cursor);
        const version = Number(row.version);
        const delta = Date.parse(s.cursor) - Date.parse(previousCursor);
        if (delta === 0) return { changed: false, previousCursor, version };
        if (delta < 0 && !s.allowBackwards) throw backwardsRefused(s.table, previousCursor, s.cursor);
        // The forward-only trigger lets this transaction, and only it, move the cursor back.
        if (delta < 0) await client.query(`SELECT set_config('k2_offload.allow_backwards', 'on', true)`);
        // A new token fences out any holder whose lease expired while it was still working.
        await client.query(
          `UPDATE ${W} SET cursor = $2, version = version + 1, last_batch_id = NULL, status = 'idle',
             lease_token = lease_token + 1, lease_holder = NULL, lease_expires_at = NULL, updated_at = $3
           WHERE table_name = $1`,
          [s.table, s.cursor, at.toISOString()],
        );
        await client.query(
          `INSERT INTO ${A} (table_name, old_cursor, new_cursor, backwards, actor, reason, at)
           VALUES ($1, $2, $3, $4, $5, $6, $7)`,
          [s.table, previousCursor, s.cursor, delta < 0, s.actor, s.reason, at.toISOString()],
        );
        return { changed: true, previousCursor, version: version + 1 };
      });
    },

    async history(query_ = {}) {
      const q = normalizeHistoryQuery(query_);
      if (q.table !== null) await get(q.table);
      const rows = await query<RunRow>(
        `SELECT ${RUN_COLUMNS} FROM ${R}
         WHERE ($1::text IS NULL OR table_name = $1) AND ($2::timestamptz IS NULL OR recorded_at >= $2)
         ORDER BY id DESC LIMIT $3`,
        [q.table, q.since, q.limit],
      );
      return rows.map(toRun);
    },

    async audit(query_ = {}) {
      const table = query_.table === undefined ? null : checkTableName(query_.table);
      const limit = normalizeLimit(query_.limit);
      if (table !== null) await get(table);
      const rows = await query<AuditRow>(
        `SELECT ${AUDIT_COLUMNS} FROM ${A} WHERE ($1::text IS NULL OR table_name = $1) ORDER BY id DESC LIMIT $2`,
        [table, limit],
      );
      return rows.map(toAudit);
    },
  };
}
