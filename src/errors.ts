/**
 * One small error hierarchy. Each class has a literal `name` (Step Functions `Retry`/`Catch` match on
 * `Error` names) and declares whether a retry of the same step can succeed.
 */
export abstract class OffloadError extends Error {
  abstract override readonly name: string;
  abstract readonly retryable: boolean;
  readonly details: Record<string, unknown>;

  constructor(message: string, details: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.details = details;
  }

  toJSON() {
    return { name: this.name, message: this.message, retryable: this.retryable, details: this.details };
  }
}

/** A config file, event or CLI argument that does not satisfy its schema. Fix the input; never retried. */
export class ConfigError extends OffloadError {
  override readonly name = 'ConfigError' as const;
  readonly retryable = false;
}

/** A stage whose connection secrets still hold the deploy-time placeholder: nothing can run yet. */
export class NotConfiguredError extends OffloadError {
  override readonly name = 'NotConfiguredError' as const;
  readonly retryable = false;
}

/** Input that is well formed but asks for something impossible (unknown table, inverted window...). */
export class InputError extends OffloadError {
  override readonly name = 'InputError' as const;
  readonly retryable = false;
}

/** The watermark was not where this batch expected it: another writer moved it, or a lease was lost. */
export class WatermarkConflictError extends OffloadError {
  override readonly name = 'WatermarkConflictError' as const;
  readonly retryable = false;
}

/** The per-table lease is held by another cycle, or this holder's fencing token is stale. */
export class LeaseError extends OffloadError {
  override readonly name = 'LeaseError' as const;
  readonly retryable = false;
}

/** An Iceberg catalog refused a commit because the table changed underneath: reload and retry. */
export class CommitConflictError extends OffloadError {
  override readonly name = 'CommitConflictError' as const;
  readonly retryable = true;
}

/** The Iceberg table does not carry the marker the watermark step requires. */
export class MarkerMissingError extends OffloadError {
  override readonly name = 'MarkerMissingError' as const;
  readonly retryable = false;
}

/** Iceberg metadata or a manifest that violates the spec, or that was not written by a table we know. */
export class InvalidMetadataError extends OffloadError {
  override readonly name = 'InvalidMetadataError' as const;
  readonly retryable = false;
}

/**
 * Iceberg lacks batches the watermark has passed: the catalog points at older metadata (a restored
 * catalog database or Glue table version), or at another catalog with no table at all. The table stops
 * until a person repairs it (`watermark rewind`, or the catalog pointed back); retrying cannot help.
 */
export class IcebergBehindError extends OffloadError {
  override readonly name = 'IcebergBehindError' as const;
  readonly retryable = false;
}

/** The ClickHouse table no longer matches the configured columns. */
export class SchemaDriftError extends OffloadError {
  override readonly name = 'SchemaDriftError' as const;
  readonly retryable = false;
}

/** A dependency (ClickHouse, Postgres, S3, Glue) could not be reached or timed out. */
export class UnavailableError extends OffloadError {
  override readonly name = 'UnavailableError' as const;
  readonly retryable = true;
}

/**
 * Staged files do not hold exactly the window's rows (rows changed while staging, e.g. a TTL merge, or a
 * write went missing). Nothing was committed; staging the batch again from current data fixes it.
 */
export class StagingMismatchError extends OffloadError {
  override readonly name = 'StagingMismatchError' as const;
  readonly retryable = true;
}

export const RETRYABLE_ERROR_NAMES = [
  'CommitConflictError',
  'UnavailableError',
  'StagingMismatchError',
] as const;
export const ERROR_NAMES = [
  'ConfigError',
  'InputError',
  'WatermarkConflictError',
  'LeaseError',
  'CommitConflictError',
  'MarkerMissingError',
  'InvalidMetadataError',
  'IcebergBehindError',
  'SchemaDriftError',
  'UnavailableError',
  'StagingMismatchError',
] as const;
export type ErrorName = (typeof ERROR_NAMES)[number];

export function isRetryable(error: unknown): boolean {
  return error instanceof OffloadError ? error.retryable : false;
}

/** `text` cut to at most `max` characters, with `…` where it was cut, so a reader sees that it was. */
export function shorten(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, Math.max(0, max - 1))}…`;
}
