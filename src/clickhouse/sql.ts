import { IDENTIFIER } from '../config/schema.ts';
import { InputError } from '../errors.ts';
import { toInstant } from '../plan/batch.ts';

/**
 * The only ways a value reaches SQL text: identifiers checked against the config's identifier rule and
 * back-quoted, string literals escaped, instants rebuilt from a parsed date. Everything else is refused.
 */
export function ident(name: string, what = 'identifier'): string {
  if (!IDENTIFIER.test(name))
    throw new InputError(
      `${what} ${JSON.stringify(name)} is not a plain identifier (letters, digits, _; not starting with a digit); refusing to put it into SQL`,
      { value: name },
    );
  return `\`${name}\``;
}

export function qualifiedName(database: string, table: string): string {
  return `${ident(database, 'database')}.${ident(table, 'table')}`;
}

/** A ClickHouse string literal: backslash and quote escaped, so any text is inert. */
export function stringLiteral(value: string): string {
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

/** `2026-11-22T03:00:00.123Z` -> `2026-11-22 03:00:00.123000` (UTC wall clock, microseconds). */
export function utcMicros(instant: string | Date): string {
  const iso = toInstant(instant);
  return `${iso.slice(0, 10)} ${iso.slice(11, 23)}000`;
}

/**
 * An exact instant as `DateTime64(6, 'UTC')`. Comparing a `DateTime` (seconds) or `DateTime64(3)` column
 * with it is exact in ClickHouse (both sides widen to microseconds), so half-open windows neither drop
 * nor repeat a row at a bound that falls inside a second.
 */
export function instantLiteral(instant: string | Date): string {
  return `toDateTime64('${utcMicros(instant)}', 6, 'UTC')`;
}

/** Epoch microseconds (as ClickHouse JSON prints UInt64/Int64: a string or a number) -> ISO instant. */
export function instantFromMicros(micros: string | number): string {
  return new Date(Number(BigInt(micros) / 1000n)).toISOString();
}
