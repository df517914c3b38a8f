import type { AuditAction, AuditRecord, RunOutcome, RunRecord, Watermark, WatermarkStatus } from './types.ts';

/** Column lists and row mappers of the Postgres store: bigint columns arrive as strings, instants as Dates. */

export const WATERMARK_COLUMNS = `table_name, cursor, version::text, status, last_batch_id, last_marker_batch_id, last_success_at,
  last_checked_at, last_rows::text, last_duration_ms::text, consecutive_failures, last_error_name,
  last_error_message, lease_holder, lease_token::text, lease_expires_at, lease_host, lease_pid,
  lease_started_at, iceberg_catalog, iceberg_location`;

export const RUN_COLUMNS = `id::text, table_name, batch_id, window_start, window_end, rows::text, files,
  bytes::text, duration_ms::text, outcome, error_name, error_message, note, lease_token::text, recorded_at`;

export const AUDIT_COLUMNS =
  'id::text, table_name, action, old_cursor, new_cursor, backwards, actor, reason, at, skipped_rows::text';

type Instant = Date | string | null;

export const iso = (value: Date | string): string => new Date(value).toISOString();
const isoOrNull = (value: Instant): string | null => (value === null ? null : iso(value));
const num = (value: string | number | null): number | null => (value === null ? null : Number(value));

export type WatermarkRow = {
  table_name: string;
  cursor: Date;
  version: string;
  status: string;
  last_batch_id: string | null;
  last_marker_batch_id: string | null;
  last_success_at: Instant;
  last_checked_at: Instant;
  last_rows: string | null;
  last_duration_ms: string | null;
  consecutive_failures: number;
  last_error_name: string | null;
  last_error_message: string | null;
  lease_holder: string | null;
  lease_token: string;
  lease_expires_at: Instant;
  lease_host: string | null;
  lease_pid: number | null;
  lease_started_at: Instant;
  iceberg_catalog: string | null;
  iceberg_location: string | null;
};

export function toWatermark(r: WatermarkRow): Watermark {
  return {
    table: r.table_name,
    cursor: iso(r.cursor),
    version: Number(r.version),
    status: r.status as WatermarkStatus,
    lastBatchId: r.last_batch_id,
    lastMarkerBatchId: r.last_marker_batch_id,
    lastSuccessAt: isoOrNull(r.last_success_at),
    lastCheckedAt: isoOrNull(r.last_checked_at),
    lastRows: num(r.last_rows),
    lastDurationMs: num(r.last_duration_ms),
    consecutiveFailures: r.consecutive_failures,
    lastError:
      r.last_error_name === null ? null : { name: r.last_error_name, message: r.last_error_message ?? '' },
    lease:
      r.lease_holder !== null && r.lease_expires_at !== null
        ? {
            holder: r.lease_holder,
            token: r.lease_token,
            expiresAt: iso(r.lease_expires_at),
            host: r.lease_host,
            pid: r.lease_pid,
            startedAt: isoOrNull(r.lease_started_at),
          }
        : null,
    leaseToken: r.lease_token,
    iceberg:
      r.iceberg_catalog !== null && r.iceberg_location !== null
        ? { catalog: r.iceberg_catalog, location: r.iceberg_location }
        : null,
  };
}

export type RunRow = {
  id: string;
  table_name: string;
  batch_id: string | null;
  window_start: Instant;
  window_end: Instant;
  rows: string | null;
  files: number | null;
  bytes: string | null;
  duration_ms: string | null;
  outcome: string;
  error_name: string | null;
  error_message: string | null;
  note: string | null;
  lease_token: string | null;
  recorded_at: Date;
};

export function toRun(r: RunRow): RunRecord {
  return {
    id: r.id,
    table: r.table_name,
    batchId: r.batch_id,
    windowStart: isoOrNull(r.window_start),
    windowEnd: isoOrNull(r.window_end),
    rows: num(r.rows),
    files: r.files,
    bytes: num(r.bytes),
    durationMs: num(r.duration_ms),
    outcome: r.outcome as RunOutcome,
    error: r.error_name === null ? null : { name: r.error_name, message: r.error_message ?? '' },
    note: r.note,
    leaseToken: r.lease_token,
    recordedAt: iso(r.recorded_at),
  };
}

export type AuditRow = {
  id: string;
  table_name: string;
  action: string;
  old_cursor: Date;
  new_cursor: Date;
  backwards: boolean;
  actor: string;
  reason: string;
  at: Date;
  skipped_rows: string | null;
};

export function toAudit(r: AuditRow): AuditRecord {
  return {
    id: r.id,
    table: r.table_name,
    action: r.action as AuditAction,
    oldCursor: iso(r.old_cursor),
    newCursor: iso(r.new_cursor),
    backwards: r.backwards,
    actor: r.actor,
    reason: r.reason,
    at: iso(r.at),
    skippedRows: num(r.skipped_rows),
  };
}
