/**
 * The watermark store: per table, how far the cold tier is known to be complete (the cursor), who may
 * move it (a lease with a fencing token), and what every attempt did (run history, audit of manual
 * changes). Postgres in production and locally; an in-memory twin with the same semantics for tests.
 *
 * Instants are ISO-8601 UTC strings with milliseconds (see `toInstant` in src/plan/batch.ts). Lease
 * tokens are decimal strings of a bigint that only ever grows per table.
 */

export const WATERMARK_STATUSES = ['idle', 'running', 'ok', 'failed'] as const;
export type WatermarkStatus = (typeof WATERMARK_STATUSES)[number];

export const RUN_OUTCOMES = ['committed', 'reconciled', 'failed', 'noop'] as const;
export type RunOutcome = (typeof RUN_OUTCOMES)[number];

/** Outcomes that moved the cursor; a batch with one of these in its history is done. */
export const SUCCESS_OUTCOMES = ['committed', 'reconciled'] as const;
export type SuccessOutcome = (typeof SUCCESS_OUTCOMES)[number];

export type Lease = { holder: string; token: string; expiresAt: string };

export type ErrorSummary = { name: string; message: string };

export type Watermark = {
  table: string;
  cursor: string;
  /** Incremented on every cursor change (advance, reconcile, setCursor). */
  version: number;
  status: WatermarkStatus;
  lastBatchId: string | null;
  lastSuccessAt: string | null;
  lastCheckedAt: string | null;
  lastRows: number | null;
  lastDurationMs: number | null;
  consecutiveFailures: number;
  lastError: ErrorSummary | null;
  /** Null once released. An expired lease is still shown (with `expiresAt` in the past) until taken over. */
  lease: Lease | null;
  /** The fencing token most recently issued for this table ("0" before the first lease). */
  leaseToken: string;
};

export type RunRecord = {
  id: string;
  table: string;
  batchId: string | null;
  windowStart: string | null;
  windowEnd: string | null;
  rows: number | null;
  files: number | null;
  bytes: number | null;
  durationMs: number | null;
  outcome: RunOutcome;
  error: ErrorSummary | null;
  /** Why a pass did nothing, or what a reconcile was based on. */
  note: string | null;
  leaseToken: string | null;
  recordedAt: string;
};

export type AuditRecord = {
  id: string;
  table: string;
  oldCursor: string;
  newCursor: string;
  backwards: boolean;
  actor: string;
  reason: string;
  at: string;
};

export type AcquireResult =
  | { acquired: true; token: string; expiresAt: string }
  | { acquired: false; holder: string; expiresAt: string };

/** Whether a heartbeat kept the lease; when not, who holds the table now (null: nobody). */
export type ExtendResult =
  | { extended: true; expiresAt: string }
  | { extended: false; holder: string | null; token: string };

export type AdvanceInput = {
  table: string;
  batchId: string;
  windowStart: string;
  windowEnd: string;
  leaseToken: string;
  rows: number;
  files: number;
  bytes: number;
  durationMs: number;
  outcome: SuccessOutcome;
  /** Also release the lease in the same transaction (the table's last batch of the pass). */
  releaseLease?: boolean;
};

export type ReconcileInput = {
  table: string;
  batchId: string;
  windowEnd: string;
  rows: number;
  leaseToken: string;
  note?: string;
};

export type FailureInput = {
  table: string;
  batchId?: string | null;
  windowStart?: string | null;
  windowEnd?: string | null;
  /** The attempt's lease; omitted or empty when the failure came before a lease was taken. */
  leaseToken?: string | null;
  error: ErrorSummary;
  durationMs: number;
};

export type NoopInput = { table: string; leaseToken: string; reason: string };

export type SetCursorInput = {
  table: string;
  cursor: string;
  actor: string;
  reason: string;
  /** Required to move the cursor back (re-offloads the rows between: Iceberg may get duplicates). */
  allowBackwards: boolean;
};

export type HistoryQuery = { table?: string; limit?: number; since?: string };
export type AuditQuery = { table?: string; limit?: number };

export interface WatermarkStore {
  /** Applies pending schema migrations; safe to call from many processes at once. */
  migrate(): Promise<void>;
  /** Inserts a row for each table that has none, at `initialCursor`; existing rows are untouched. */
  ensureTables(tables: Array<{ table: string; initialCursor: string }>): Promise<{ created: string[] }>;
  /** Throws InputError for an unknown table. */
  get(table: string): Promise<Watermark>;
  list(): Promise<Watermark[]>;
  /**
   * Takes the lease when it is free, expired, or already this holder's (a renewal, with a new token).
   * Every grant issues the previous token + 1, which fences out writes carrying an older token.
   */
  acquireLease(table: string, holder: string, ttlSeconds: number): Promise<AcquireResult>;
  /** Releases only when `token` is the current, held lease; otherwise does nothing. */
  releaseLease(table: string, token: string): Promise<{ released: boolean }>;
  /**
   * The heartbeat of a long job (the Spark commit): moves the lease's expiry to at least now +
   * `ttlSeconds`, only while `token` is the table's current, held lease (a compare-and-set on the
   * token). A lease past its expiry that nobody took over is extended too: the token fences, not the
   * clock. A heartbeat never shortens a lease.
   */
  extendLease(table: string, token: string, ttlSeconds: number): Promise<ExtendResult>;
  /**
   * Moves the cursor from `windowStart` to `windowEnd` (compare-and-set under the lease) and records
   * the run. A replay of a batch that already advanced the table is `replayed`, with no write. A token
   * that is not the table's current, held one is a LeaseError; any other mismatch a
   * WatermarkConflictError. A lease past its expiry still writes until someone takes it over: the token,
   * not the clock, is what fences.
   */
  advance(input: AdvanceInput): Promise<{ result: 'advanced' | 'replayed'; version: number }>;
  /** Jumps forward to a marker's window end found in Iceberg; never backwards, no-op when already there. */
  reconcile(input: ReconcileInput): Promise<{ result: 'reconciled' | 'unchanged'; previousCursor: string }>;
  /**
   * Records a failed attempt in history. The table's counters and status change only when the token is
   * the current one (or none was given); a matching lease is released.
   */
  recordFailure(input: FailureInput): Promise<{ counted: boolean; consecutiveFailures: number }>;
  /** A pass with nothing to do: status back from `running`, `lastCheckedAt` set, lease released. */
  recordNoop(input: NoopInput): Promise<{ recorded: boolean }>;
  /** The explicit, audited cursor change (CLI `watermark set|reset`). Refused while a live lease is held. */
  setCursor(input: SetCursorInput): Promise<{ changed: boolean; previousCursor: string; version: number }>;
  /** Newest first. */
  history(query?: HistoryQuery): Promise<RunRecord[]>;
  /** Newest first. */
  audit(query?: AuditQuery): Promise<AuditRecord[]>;
}
