import { IDENTIFIER } from '../config/schema.ts';
import { ConfigError, InputError, LeaseError, shorten, WatermarkConflictError } from '../errors.ts';
import { toInstant } from '../plan/batch.ts';
import type {
  AdvanceInput,
  CatalogBinding,
  ErrorSummary,
  FailureInput,
  ForceReleaseInput,
  HistoryQuery,
  Lease,
  NoopInput,
  ReconcileInput,
  SetCursorInput,
} from './types.ts';

/**
 * Input checks and error messages shared by the Postgres and in-memory stores, so both refuse the same
 * things with the same words.
 */

export const DEFAULT_SCHEMA = 'k2_offload';
const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;
const TOKEN = /^[0-9]{1,19}$/;
const MAX_TTL_SECONDS = 24 * 3600;
export const MAX_LIST_LIMIT = 10_000;
const DEFAULT_LIST_LIMIT = 100;
const MAX_TEXT = 4000;

/** The Postgres schema holding our tables; lower-case so quoted and unquoted spellings agree. */
export function checkSchemaName(schema: string): string {
  if (!SCHEMA_NAME.test(schema))
    throw new ConfigError(
      `watermark schema ${JSON.stringify(schema)} is not a valid name: use lower-case letters, digits and _, starting with a letter or _, at most 63 characters (default ${DEFAULT_SCHEMA})`,
      { schema },
    );
  return schema;
}

export function checkTableName(table: string): string {
  if (typeof table !== 'string' || !IDENTIFIER.test(table))
    throw new InputError(
      `table ${JSON.stringify(table)} is not a valid table name: a letter or _, then letters, digits or _`,
      { table },
    );
  return table;
}

export function unknownTable(table: string, known: string[]): InputError {
  const list = known.length > 0 ? `known tables: ${known.join(', ')}` : 'no table has a watermark yet';
  return new InputError(
    `no watermark for table ${JSON.stringify(table)} (${list}); check the name, or add the table to the config and run the offload once to create its watermark`,
    { table, known },
  );
}

export function checkToken(token: string, field = 'leaseToken'): string {
  if (typeof token !== 'string' || !TOKEN.test(token))
    throw new InputError(
      `${field} ${JSON.stringify(token)} is not a lease token: expected the decimal token returned by acquireLease`,
      { field, value: String(token) },
    );
  return BigInt(token).toString();
}

function checkCount(value: number, field: string): number {
  if (!Number.isSafeInteger(value) || value < 0)
    throw new InputError(`${field} must be a non-negative integer, got ${JSON.stringify(value)}`, {
      field,
      value,
    });
  return value;
}

function checkDuration(value: number): number {
  if (!Number.isFinite(value) || value < 0)
    throw new InputError(`durationMs must be a non-negative number, got ${JSON.stringify(value)}`, {
      value,
    });
  return Math.round(value);
}

function checkText(value: string, field: string): string {
  if (typeof value !== 'string' || value.trim() === '')
    throw new InputError(`${field} is required and must not be empty`, { field });
  return shorten(value, MAX_TEXT);
}

function checkBatchId(batchId: string): string {
  return checkText(batchId, 'batchId');
}

export function checkHolder(holder: string): string {
  return checkText(holder, 'holder');
}

export function checkTtl(ttlSeconds: number): number {
  if (!Number.isFinite(ttlSeconds) || ttlSeconds <= 0 || ttlSeconds > MAX_TTL_SECONDS)
    throw new InputError(
      `lease ttlSeconds must be a number in (0, ${MAX_TTL_SECONDS}], got ${JSON.stringify(ttlSeconds)}`,
      { ttlSeconds },
    );
  return ttlSeconds;
}

export function expiryOf(now: Date, ttlSeconds: number): string {
  return new Date(now.getTime() + Math.round(ttlSeconds * 1000)).toISOString();
}

export function normalizeAdvance(input: AdvanceInput) {
  const windowStart = toInstant(input.windowStart, 'windowStart');
  const windowEnd = toInstant(input.windowEnd, 'windowEnd');
  if (Date.parse(windowStart) >= Date.parse(windowEnd))
    throw new InputError(
      `window of ${input.table} is inverted or empty: start ${windowStart} is not before end ${windowEnd}; a watermark only moves forward`,
      { table: input.table, windowStart, windowEnd },
    );
  if (input.outcome !== 'committed' && input.outcome !== 'reconciled')
    throw new InputError(`outcome must be committed or reconciled, got ${JSON.stringify(input.outcome)}`);
  return {
    table: checkTableName(input.table),
    batchId: checkBatchId(input.batchId),
    windowStart,
    windowEnd,
    leaseToken: checkToken(input.leaseToken),
    rows: checkCount(input.rows, 'rows'),
    files: checkCount(input.files, 'files'),
    bytes: checkCount(input.bytes, 'bytes'),
    durationMs: checkDuration(input.durationMs),
    outcome: input.outcome,
    releaseLease: input.releaseLease === true,
  };
}

export function normalizeReconcile(input: ReconcileInput) {
  return {
    table: checkTableName(input.table),
    batchId: checkBatchId(input.batchId),
    windowEnd: toInstant(input.windowEnd, 'windowEnd'),
    rows: checkCount(input.rows, 'rows'),
    leaseToken: checkToken(input.leaseToken),
    note: input.note === undefined ? null : checkText(input.note, 'note'),
  };
}

export function normalizeError(error: ErrorSummary): ErrorSummary {
  const name = typeof error?.name === 'string' && error.name !== '' ? error.name : 'Error';
  const message = typeof error?.message === 'string' ? error.message : String(error?.message);
  return { name: shorten(name, 200), message: shorten(message, MAX_TEXT) };
}

export function normalizeFailure(input: FailureInput) {
  const optionalInstant = (v: string | null | undefined, field: string) =>
    v === undefined || v === null ? null : toInstant(v, field);
  const token = input.leaseToken;
  return {
    table: checkTableName(input.table),
    batchId: input.batchId === undefined || input.batchId === null ? null : checkBatchId(input.batchId),
    windowStart: optionalInstant(input.windowStart, 'windowStart'),
    windowEnd: optionalInstant(input.windowEnd, 'windowEnd'),
    leaseToken: token === undefined || token === null || token === '' ? null : checkToken(token),
    error: normalizeError(input.error),
    durationMs: checkDuration(input.durationMs),
  };
}

export function normalizeNoop(input: NoopInput) {
  return {
    table: checkTableName(input.table),
    leaseToken: checkToken(input.leaseToken),
    reason: checkText(input.reason, 'reason'),
  };
}

export function normalizeSetCursor(input: SetCursorInput) {
  return {
    table: checkTableName(input.table),
    cursor: toInstant(input.cursor, 'cursor'),
    actor: checkText(input.actor, 'actor'),
    reason: checkText(input.reason, 'reason'),
    allowBackwards: input.allowBackwards === true,
    action: input.action === 'rewind' ? ('rewind' as const) : ('cursor' as const),
    lastBatchId:
      input.lastBatchId === undefined || input.lastBatchId === null ? null : checkBatchId(input.lastBatchId),
    skippedRows: checkSkippedRows(input.skippedRows),
  };
}

function checkSkippedRows(rows: number | undefined): number | null {
  if (rows === undefined || rows === 0) return null;
  if (!Number.isSafeInteger(rows) || rows < 0)
    throw new InputError(`skippedRows must be a whole number of rows, got ${JSON.stringify(rows)}`);
  return rows;
}

export function normalizeForceRelease(input: ForceReleaseInput) {
  return {
    table: checkTableName(input.table),
    actor: checkText(input.actor, 'actor'),
    reason: checkText(input.reason, 'reason'),
  };
}

export function normalizeBinding(binding: CatalogBinding): CatalogBinding {
  return {
    catalog: checkText(binding.catalog, 'catalog'),
    location: checkText(binding.location, 'location'),
  };
}

/** The audit trail's words for a forced release: why, and whose lease it was. */
export function releaseReason(reason: string, lease: Lease): string {
  const where = lease.host ? ` on ${lease.host} pid ${lease.pid}` : '';
  return `${reason} (released the lease of ${lease.holder}${where}, token ${lease.token}, expiring ${lease.expiresAt})`;
}

export function normalizeLimit(limit: number | undefined): number {
  if (limit === undefined) return DEFAULT_LIST_LIMIT;
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_LIST_LIMIT)
    throw new InputError(`limit must be an integer in [1, ${MAX_LIST_LIMIT}], got ${JSON.stringify(limit)}`);
  return limit;
}

export function normalizeHistoryQuery(query: HistoryQuery) {
  return {
    table: query.table === undefined ? null : checkTableName(query.table),
    limit: normalizeLimit(query.limit),
    since: query.since === undefined ? null : toInstant(query.since, 'since'),
  };
}

export function staleLease(table: string, token: string, current: string, holder: string | null): LeaseError {
  const state =
    holder === null ? `no lease is held (last token ${current})` : `${holder} holds token ${current}`;
  return new LeaseError(
    `lease token ${token} of table ${table} is no longer current: ${state}; this attempt was fenced out, so its result was not recorded. Re-plan the table to continue`,
    { table, token, currentToken: current, holder },
  );
}

export function conflict(
  table: string,
  batch: { batchId: string; windowStart: string; windowEnd: string },
  actualCursor: string,
): WatermarkConflictError {
  return new WatermarkConflictError(
    `watermark of ${table} is at ${actualCursor}, but batch ${batch.batchId} [${batch.windowStart}, ${batch.windowEnd}) expected it at ${batch.windowStart}; another writer moved it or the batch is out of order. Re-plan from the current watermark`,
    { table, ...batch, expectedCursor: batch.windowStart, actualCursor },
  );
}

export function leaseHeld(table: string, holder: string, expiresAt: string): LeaseError {
  return new LeaseError(
    `table ${table} is being offloaded: ${holder} holds its lease until ${expiresAt}; wait for that run to finish (or the lease to expire) and retry`,
    { table, holder, expiresAt },
  );
}

export function backwardsRefused(table: string, from: string, to: string): InputError {
  return new InputError(
    `refusing to move the watermark of ${table} backwards from ${from} to ${to}: rows after ${to} would be offloaded again. Use reset (allowBackwards / --force) if that is intended`,
    { table, from, to },
  );
}
