import type { HourlyCheck, HourlyLedger, LedgerEntry } from './hourly-types.ts';
import { normalizeEntry } from './hourly-types.ts';
import type { PgAccess } from './pg-access.ts';
import { iso } from './pg-rows.ts';
import { checkTableName } from './rules.ts';

type LedgerRow = {
  table_name: string;
  batch_id: string;
  kind: LedgerEntry['kind'];
  window_start: Date;
  window_end: Date;
  hours: LedgerEntry['hours'];
  recorded_at: Date;
};

type CheckRow = {
  table_name: string;
  checked_at: Date;
  range_from: Date;
  range_to: Date;
  checked_hours: number;
  mismatches: HourlyCheck['mismatches'];
};

/** The hourly ledger on Postgres (migration 4): one row per batch, its hours as JSON. */
export function pgHourlyMethods(db: PgAccess, now: () => Promise<Date>): HourlyLedger {
  const S = db.W.replace(/\.watermarks$/, '');
  const L = `${S}.hourly_ledger`;
  const C = `${S}.hourly_checks`;
  return {
    async recordHours(input) {
      const e = normalizeEntry(input);
      await db.get(e.table);
      const recordedAt = (await now()).toISOString();
      const rows = await db.query(
        `INSERT INTO ${L} (table_name, batch_id, kind, window_start, window_end, hours, recorded_at)
         VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7) ON CONFLICT (table_name, batch_id) DO NOTHING RETURNING 1`,
        [e.table, e.batchId, e.kind, e.windowStart, e.windowEnd, JSON.stringify(e.hours), recordedAt],
      );
      return { recorded: rows.length > 0 };
    },

    async ledger(table, range) {
      const t = checkTableName(table);
      const rows = await db.query<LedgerRow>(
        `SELECT table_name, batch_id, kind, window_start, window_end, hours, recorded_at FROM ${L}
         WHERE table_name = $1 AND window_end > $2 AND window_start < $3 ORDER BY window_start, batch_id`,
        [t, range.from, range.to],
      );
      return rows.map((r) => ({
        table: r.table_name,
        batchId: r.batch_id,
        kind: r.kind,
        windowStart: iso(r.window_start),
        windowEnd: iso(r.window_end),
        hours: r.hours,
        recordedAt: iso(r.recorded_at),
      }));
    },

    async recordCheck(check) {
      const t = checkTableName(check.table);
      await db.query(
        `INSERT INTO ${C} (table_name, checked_at, range_from, range_to, checked_hours, mismatches)
         VALUES ($1, $2, $3, $4, $5, $6::jsonb)
         ON CONFLICT (table_name) DO UPDATE SET checked_at = $2, range_from = $3, range_to = $4,
           checked_hours = $5, mismatches = $6::jsonb`,
        [t, check.checkedAt, check.from, check.to, check.checkedHours, JSON.stringify(check.mismatches)],
      );
    },

    async lastCheck(table) {
      const t = checkTableName(table);
      const [r] = await db.query<CheckRow>(
        `SELECT table_name, checked_at, range_from, range_to, checked_hours, mismatches FROM ${C} WHERE table_name = $1`,
        [t],
      );
      if (!r) return null;
      return {
        table: r.table_name,
        checkedAt: iso(r.checked_at),
        from: iso(r.range_from),
        to: iso(r.range_to),
        checkedHours: r.checked_hours,
        mismatches: r.mismatches,
      };
    },
  };
}
