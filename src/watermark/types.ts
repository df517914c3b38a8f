/**
 * The watermark store: per table, how far the cold tier is known to be complete (the cursor), who may
 * move it (a lease with a fencing token), and what every attempt did (run history, audit of manual
 * changes). Postgres in production and locally; an in-memory twin with the same semantics for tests.
 *
 * Instants are ISO-8601 UTC strings with milliseconds (see `toInstant` in src/plan/batch.ts). Lease
 * tokens are decimal strings of a bigint that only ever grows per table.
 */

import type { HourlyLedger } from './hourly-types.ts';

export type * from './hourly-types.ts';

export const WATERMARK_STATUSES = ['idle', 'running', 'ok', 'failed'] as const;
export type WatermarkStatus = (typeof WATERMARK_STATUSES)[number];

export const RUN_OUTCOMES = ['committed', 'reconciled', 'failed', 'noop'] as const;
export type RunOutcome = (typeof RUN_OUTCOMES)[number];

/** Outcomes that moved the cursor; a batch with one of these in its history is done. */
export const SUCCESS_OUTCOMES = ['committed', 'reconciled'] as const;
export type SuccessOutcome = (typeof SUCCESS_OUTCOMES)[number];

/**
 * A lease and who holds it: the holder label (a cycle id, or a CLI command), and the process that took
 * it (host name and process id), so a stuck lease can be traced and a dead holder told from a live one.
 * Times are the database's (Postgres `now()`), never the holder's own clock.
 */
export type Lease = {
  holder: string;
  token: string;
  expiresAt: string;
  host: string | null;
  pid: number | null;
  startedAt: string | null;
};

/** The process a store acts for: stamped on every lease it takes. */
export type HolderProcess = { host: string; pid: number };

/** The catalog a watermark's history was committed through (recorded by the planner). */
export type CatalogBinding = { catalog: string; location: string };

export type ErrorSummary = { name: string; message: string };

export type Watermark = {
  table: string;
  cursor: string;
  /** Incremented on every cursor change (advance, reconcile, setCursor). */
  version: number;
  status: WatermarkStatus;
  lastBatchId: string | null;
  /**
   * The newest batch the cursor passed that Iceberg holds a marker for (empty windows commit nothing):
   * it must stay in the table's marker chain. Null when unknown (never committed, or a manual change).
   */
  lastMarkerBatchId: string | null;
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
  /** Where this table's Iceberg history lives; null until a plan has seen the table. */
  iceberg: CatalogBinding | null;
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

/** What a manual, audited change did: moved the cursor (set, reset), rewound it to Iceberg, freed a lease. */
export const AUDIT_ACTIONS = ['cursor', 'rewind', 'release'] as const;
export type AuditAction = (typeof AUDIT_ACTIONS)[number];

export type AuditRecord = {
  id: string;
  table: string;
  action: AuditAction;
  oldCursor: string;
  newCursor: string;
  backwards: boolean;
  actor: string;
  reason: string;
  at: string;
  /** Rows a forced forward set left out of Iceberg on purpose; null when it skipped none. */
  skippedRows: number | null;
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
  /** `rewind`: back to the newest batch Iceberg holds, recorded as the last batch (default: none). */
  action?: 'cursor' | 'rewind';
  lastBatchId?: string | null;
  /**
   * A forward set that leaves rows out of Iceberg on purpose (`watermark set --force`): how many
   * ClickHouse held in the range. Audits report that range as an audited skip, not as a mismatch.
   */
  skippedRows?: number;
};

export type ForceReleaseInput = { table: string; actor: string; reason: string };

export type HistoryQuery = { table?: string; limit?: number; since?: string };
export type AuditQuery = { table?: string; limit?: number };

export interface WatermarkStore extends HourlyLedger {
  /** Applies pending schema migrations; safe to call from many processes at once. */
  migrate(): Promise<void>;
  /** The store's clock (Postgres `now()`): what lease expiry is measured against. */
  now(): Promise<string>;
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
  /** Releases every lease this store's process holds (Ctrl-C, SIGTERM); returns their tables. */
  releaseOwnLeases(): Promise<{ tables: string[] }>;
  /**
   * The audited release of a stuck lease (CLI `watermark release`): frees it whoever holds it and issues
   * a new token, which fences the old holder out should it resume. Whether the holder is alive is the
   * caller's check (only it can look at the holder's host).
   */
  forceRelease(input: ForceReleaseInput): Promise<{ released: boolean; lease: Lease | null }>;
  /** Records where the table's Iceberg history lives; does nothing when unchanged. */
  bindCatalog(table: string, binding: CatalogBinding): Promise<void>;
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
  /**
   * The explicit, audited cursor change (CLI `watermark set|reset|rewind`). Refused while a live lease
   * is held.
   */
  setCursor(input: SetCursorInput): Promise<{ changed: boolean; previousCursor: string; version: number }>;
  /** Newest first. */
  history(query?: HistoryQuery): Promise<RunRecord[]>;
  /** Newest first. */
  audit(query?: AuditQuery): Promise<AuditRecord[]>;
}
