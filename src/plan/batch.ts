import { createHash } from 'node:crypto';
import { InputError } from '../errors.ts';

/**
 * The unit of work: rows of one table whose cursor is in the half-open window [windowStart, windowEnd).
 * Instants are ISO-8601 UTC strings with milliseconds (`2026-11-22T03:00:00.000Z`), JSON- and
 * Step-Functions-friendly, and exact in Postgres `timestamptz`.
 */
export type Batch = {
  table: string;
  windowStart: string;
  windowEnd: string;
  batchId: string;
};

/** Normalizes an instant to the canonical ISO form; refuses anything that is not a valid instant. */
export function toInstant(value: string | number | Date, field = 'instant'): string {
  const date = value instanceof Date ? value : new Date(value);
  if (Number.isNaN(date.getTime()))
    throw new InputError(
      `${field}: ${JSON.stringify(String(value))} is not a valid instant; use ISO 8601 such as 2026-11-22T03:00:00Z`,
      {
        field,
        value: String(value),
      },
    );
  return date.toISOString();
}

/**
 * The batch identity: a hash of (table, start, end) only, so it is the same across retries, re-plans,
 * redeploys and console reruns. Never derived from an execution or job id.
 */
export function batchIdOf(table: string, windowStart: string, windowEnd: string): string {
  const canonical = `${table}\n${toInstant(windowStart)}\n${toInstant(windowEnd)}`;
  return createHash('sha256').update(canonical).digest('hex').slice(0, 32);
}

export function makeBatch(
  table: string,
  windowStart: string | number | Date,
  windowEnd: string | number | Date,
): Batch {
  const start = toInstant(windowStart, 'windowStart');
  const end = toInstant(windowEnd, 'windowEnd');
  if (Date.parse(start) >= Date.parse(end))
    throw new InputError(`window of ${table} is inverted or empty: start ${start} is not before end ${end}`, {
      table,
      windowStart: start,
      windowEnd: end,
    });
  return { table, windowStart: start, windowEnd: end, batchId: batchIdOf(table, start, end) };
}
