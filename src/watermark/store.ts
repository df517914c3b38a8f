import { hostname } from 'node:os';
import type pg from 'pg';
import { toInstant } from '../plan/batch.ts';
import { applyMigrations } from './migrations.ts';
import { createPgAccess } from './pg-access.ts';
import { pgHourlyMethods } from './pg-hourly.ts';
import { pgRecordMethods } from './pg-records.ts';
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
  checkHolder,
  checkTableName,
  checkToken,
  checkTtl,
  conflict,
  DEFAULT_SCHEMA,
  expiryOf,
  normalizeAdvance,
  normalizeHistoryQuery,
  normalizeLimit,
  staleLease,
} from './rules.ts';
import type { HolderProcess, WatermarkStore } from './types.ts';

export type * from './types.ts';

export type PostgresWatermarkStoreOptions = {
  schema?: string;
  /**
   * Stands in for the database's clock, for tests that simulate hours. Unset (production), every
   * instant the store writes or compares, lease expiry first, is Postgres `now()`: a process whose own
   * clock runs fast or slow can neither take a live lease nor keep an expired one.
   */
  clock?: () => Date;
  /** The process stamped on the leases this store takes (default: this host and process id). */
  process?: HolderProcess;
};

export const thisProcess = (): HolderProcess => ({ host: hostname(), pid: process.pid });

/**
 * The watermark store on Postgres. Every cursor change is one compare-and-set on the table's row,
 * fenced by the lease token, in the same transaction as its history (or audit) row.
 */
export function createPostgresWatermarkStore(
  pool: pg.Pool,
  options: PostgresWatermarkStoreOptions = {},
): WatermarkStore {
  const schema = options.schema ?? DEFAULT_SCHEMA;
  const db = createPgAccess(pool, schema);
  const { W, R, A, query, missing, get } = db;
  const me = options.process ?? thisProcess();
  const clock = options.clock;
  const timeNow = async (client?: pg.ClientBase): Promise<Date> => {
    if (clock) return clock();
    const sql = 'SELECT now() AS at';
    const rows = client ? (await client.query<{ at: Date }>(sql)).rows : await query<{ at: Date }>(sql);
    return rows[0]?.at ?? new Date(Number.NaN);
  };
  const now = async () => (await timeNow()).toISOString();

  return {
    async migrate() {
      await db.withClient((client) => applyMigrations(client, schema));
    },

    now,

    async ensureTables(tables) {
      const unique = new Map<string, string>();
      for (const t of tables) {
        const table = checkTableName(t.table);
        const cursor = toInstant(t.initialCursor, 'initialCursor');
        if (!unique.has(table)) unique.set(table, cursor);
      }
      const rows = await query<{ table_name: string }>(
        `INSERT INTO ${W} (table_name, cursor, created_at, updated_at)
         SELECT t, c, $3, $3 FROM unnest($1::text[], $2::timestamptz[]) AS u (t, c)
         ON CONFLICT (table_name) DO NOTHING RETURNING table_name`,
        [[...unique.keys()], [...unique.values()], await now()],
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
        const at = await timeNow();
        // A renewal by the same holder keeps the time it first took the lease.
        const taken = await query<{ lease_token: string; lease_expires_at: Date }>(
          `UPDATE ${W} SET lease_token = lease_token + 1, lease_expires_at = $4, status = 'running',
             updated_at = $3, lease_host = $5, lease_pid = $6,
             lease_started_at = CASE WHEN lease_holder = $2 THEN coalesce(lease_started_at, $3) ELSE $3 END,
             lease_holder = $2
           WHERE table_name = $1 AND (lease_holder IS NULL OR lease_expires_at <= $3 OR lease_holder = $2)
           RETURNING lease_token::text, lease_expires_at`,
          [t, who, at.toISOString(), expiryOf(at, ttl), me.host, me.pid],
        );
        if (taken[0] !== undefined)
          return { acquired: true, token: taken[0].lease_token, expiresAt: iso(taken[0].lease_expires_at) };
        const held = await query<{ lease_holder: string | null; lease_expires_at: Date | null }>(
          `SELECT lease_holder, lease_expires_at FROM ${W} WHERE table_name = $1`,
          [t],
        );
        if (held[0] === undefined) throw await missing(t);
        const { lease_holder, lease_expires_at } = held[0];
        // Holder and expiry are null together (the table's CHECK): a holder is a lease.
        if (lease_holder !== null || attempt >= 3)
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
        [t, tok, await now()],
      );
      if (rows.length > 0) return { released: true };
      await get(t);
      return { released: false };
    },

    async releaseOwnLeases() {
      const rows = await query<{ table_name: string }>(
        `UPDATE ${W} SET lease_holder = NULL, lease_expires_at = NULL, updated_at = $3,
           status = CASE WHEN status = 'running' THEN 'idle' ELSE status END
         WHERE lease_host = $1 AND lease_pid = $2 AND lease_holder IS NOT NULL RETURNING table_name`,
        [me.host, me.pid, await now()],
      );
      return { tables: rows.map((r) => r.table_name).sort() };
    },

    async extendLease(table, token, ttlSeconds) {
      const t = checkTableName(table);
      const tok = checkToken(token, 'token');
      const ttl = checkTtl(ttlSeconds);
      const at = await timeNow();
      const rows = await query<{ lease_expires_at: Date }>(
        `UPDATE ${W} SET lease_expires_at = GREATEST(lease_expires_at, $3), updated_at = $4
         WHERE table_name = $1 AND lease_token = $2 AND lease_holder IS NOT NULL
         RETURNING lease_expires_at`,
        [t, tok, expiryOf(at, ttl), at.toISOString()],
      );
      if (rows[0] !== undefined) return { extended: true, expiresAt: iso(rows[0].lease_expires_at) };
      const held = await query<{ lease_holder: string | null; lease_token: string }>(
        `SELECT lease_holder, lease_token::text FROM ${W} WHERE table_name = $1`,
        [t],
      );
      if (held[0] === undefined) throw await missing(t);
      return { extended: false, holder: held[0].lease_holder, token: held[0].lease_token };
    },

    async advance(input) {
      const b = normalizeAdvance(input);
      for (let attempt = 0; ; attempt++) {
        const at = await now();
        // One statement: the compare-and-set and its history row commit together or not at all.
        const advanced = await query<{ version: string }>(
          `WITH up AS (
             UPDATE ${W} SET cursor = $3, version = version + 1, status = 'ok', last_batch_id = $4,
               last_marker_batch_id = CASE WHEN $6::bigint > 0 THEN $4 ELSE last_marker_batch_id END,
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
        if (
          (row.last_batch_id === b.batchId &&
            // Stryker disable next-line ConditionalExpression: a watermark naming this batch last is at its end (advance, rewind)
            cursor === b.windowEnd) ||
          row.succeeded
        )
          return { result: 'replayed', version: Number(row.version) };
        const held = row.lease_holder !== null && row.lease_token === b.leaseToken;
        if (!held) throw staleLease(b.table, b.leaseToken, row.lease_token, row.lease_holder);
        // The row changed between the two statements into one our CAS accepts (a concurrent reset): retry.
        if (cursor !== b.windowStart || attempt >= 3) throw conflict(b.table, b, cursor);
      }
    },

    ...pgRecordMethods(db, timeNow),

    ...pgHourlyMethods(db, () => timeNow()),

    async history(query_ = {}) {
      const q = normalizeHistoryQuery(query_);
      if (q.table !== null) await get(q.table);
      const rows = await query<RunRow>(
        // `r.id`, the bigint: a bare `id` would name the selected `id::text` and sort 9 before 10.
        `SELECT ${RUN_COLUMNS} FROM ${R} r
         WHERE ($1::text IS NULL OR table_name = $1) AND ($2::timestamptz IS NULL OR recorded_at >= $2)
         ORDER BY r.id DESC LIMIT $3`,
        [q.table, q.since, q.limit],
      );
      return rows.map(toRun);
    },

    async audit(query_ = {}) {
      const table = query_.table === undefined ? null : checkTableName(query_.table);
      const limit = normalizeLimit(query_.limit);
      if (table !== null) await get(table);
      const rows = await query<AuditRow>(
        `SELECT ${AUDIT_COLUMNS} FROM ${A} a WHERE ($1::text IS NULL OR table_name = $1) ORDER BY a.id DESC LIMIT $2`,
        [table, limit],
      );
      return rows.map(toAudit);
    },
  };
}
