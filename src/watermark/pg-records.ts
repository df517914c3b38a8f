import type pg from 'pg';
import type { PgAccess } from './pg-access.ts';
import { iso, toWatermark, WATERMARK_COLUMNS, type WatermarkRow } from './pg-rows.ts';
import {
  backwardsRefused,
  checkTableName,
  leaseHeld,
  normalizeBinding,
  normalizeFailure,
  normalizeForceRelease,
  normalizeNoop,
  normalizeReconcile,
  normalizeSetCursor,
  releaseReason,
  staleLease,
} from './rules.ts';
import type { WatermarkStore } from './types.ts';

/**
 * The Postgres store's writes that read the row before deciding (reconcile, failure, no-op pass, manual
 * set): each locks the row, checks, and writes the row and its history or audit in one transaction.
 */
export function pgRecordMethods(
  db: PgAccess,
  timeNow: (client: pg.ClientBase) => Promise<Date>,
): Pick<
  WatermarkStore,
  'reconcile' | 'recordFailure' | 'recordNoop' | 'setCursor' | 'forceRelease' | 'bindCatalog'
> {
  const { W, R, A, transaction, lockRow, query } = db;
  return {
    async reconcile(input) {
      const r = normalizeReconcile(input);
      return transaction(async (client) => {
        const row = await lockRow(client, r.table);
        const previousCursor = iso(row.cursor);
        if (Date.parse(previousCursor) >= Date.parse(r.windowEnd))
          return { result: 'unchanged' as const, previousCursor };
        if (row.lease_holder === null || row.lease_token !== r.leaseToken)
          throw staleLease(r.table, r.leaseToken, row.lease_token, row.lease_holder);
        const at = (await timeNow(client)).toISOString();
        await client.query(
          `UPDATE ${W} SET cursor = $2, version = version + 1, status = 'ok', last_batch_id = $3,
             last_marker_batch_id = $3,
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
        const at = (await timeNow(client)).toISOString();
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
        const at = (await timeNow(client)).toISOString();
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
        const at = await timeNow(client);
        if (row.lease_holder !== null && row.lease_expires_at !== null && row.lease_expires_at > at)
          throw leaseHeld(s.table, row.lease_holder, iso(row.lease_expires_at));
        const previousCursor = iso(row.cursor);
        const version = Number(row.version);
        const delta = Date.parse(s.cursor) - Date.parse(previousCursor);
        if (delta === 0) return { changed: false, previousCursor, version };
        // Stryker disable next-line EqualityOperator: delta is not 0 here
        const backwards = delta < 0;
        if (backwards && !s.allowBackwards) throw backwardsRefused(s.table, previousCursor, s.cursor);
        // The forward-only trigger lets this transaction, and only it, move the cursor back.
        if (backwards) {
          await client.query(`SELECT set_config('k2_offload.allow_backwards', 'on', true)`);
          // The hourly ledger says what Iceberg holds; above the new cursor it no longer does (a
          // restored catalog, a range to re-offload): those batches will be committed, and recorded, again.
          await client.query(
            `DELETE FROM ${W.replace(/\.watermarks$/, '.hourly_ledger')} WHERE table_name = $1 AND window_start >= $2`,
            [s.table, s.cursor],
          );
        }
        // A new token fences out any holder whose lease expired while it was still working.
        await client.query(
          `UPDATE ${W} SET cursor = $2, version = version + 1, last_batch_id = $4,
             last_marker_batch_id = $4, status = 'idle',
             lease_token = lease_token + 1, lease_holder = NULL, lease_expires_at = NULL, updated_at = $3
           WHERE table_name = $1`,
          [s.table, s.cursor, at.toISOString(), s.lastBatchId],
        );
        await client.query(
          `INSERT INTO ${A} (table_name, action, old_cursor, new_cursor, backwards, actor, reason, at, skipped_rows)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
          [
            s.table,
            s.action,
            previousCursor,
            s.cursor,
            backwards,
            s.actor,
            s.reason,
            at.toISOString(),
            backwards ? null : s.skippedRows,
          ],
        );
        return { changed: true, previousCursor, version: version + 1 };
      });
    },

    async forceRelease(input) {
      const f = normalizeForceRelease(input);
      return transaction(async (client) => {
        await lockRow(client, f.table);
        const { rows } = await client.query<WatermarkRow>(
          `SELECT ${WATERMARK_COLUMNS} FROM ${W} WHERE table_name = $1`,
          [f.table],
        );
        const lease = rows[0] ? toWatermark(rows[0]).lease : null;
        if (!lease) return { released: false, lease: null };
        const at = (await timeNow(client)).toISOString();
        // A new token: should the old holder resume after all, its writes are refused.
        await client.query(
          `UPDATE ${W} SET lease_token = lease_token + 1, lease_holder = NULL, lease_expires_at = NULL,
             status = CASE WHEN status = 'running' THEN 'idle' ELSE status END, updated_at = $2
           WHERE table_name = $1`,
          [f.table, at],
        );
        await client.query(
          `INSERT INTO ${A} (table_name, action, old_cursor, new_cursor, backwards, actor, reason, at)
           SELECT table_name, 'release', cursor, cursor, false, $2, $3, $4 FROM ${W} WHERE table_name = $1`,
          [f.table, f.actor, releaseReason(f.reason, lease), at],
        );
        return { released: true, lease };
      });
    },

    async bindCatalog(table, binding) {
      const b = normalizeBinding(binding);
      await query(
        `UPDATE ${W} SET iceberg_catalog = $2, iceberg_location = $3
         WHERE table_name = $1 AND (iceberg_catalog IS DISTINCT FROM $2 OR iceberg_location IS DISTINCT FROM $3)`,
        [checkTableName(table), b.catalog, b.location],
      );
    },
  };
}
