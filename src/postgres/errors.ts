import type pg from 'pg';
import { ConfigError, OffloadError, UnavailableError } from '../errors.ts';

const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
]);

/** SQLSTATEs that mean "the server cannot serve us right now", worth a retry of the same step. */
function isTransientSqlState(code: string): boolean {
  return (
    code.startsWith('08') || // connection exception
    code === '57P01' || // admin shutdown
    code === '57P02' || // crash shutdown
    code === '57P03' || // cannot connect now (starting up)
    code === '53300' || // too many connections
    code === '40001' || // serialization failure
    code === '40P01' // deadlock detected
  );
}

/** `host:port/database` of the pool, never its user or password. */
export function describeTarget(pool: Pick<pg.Pool, 'options'>): string {
  const o = pool.options as pg.PoolConfig;
  let host = o.host;
  let port = o.port ? String(o.port) : undefined;
  let database = o.database;
  if (o.connectionString) {
    try {
      const url = new URL(o.connectionString);
      host = host ?? (decodeURIComponent(url.hostname) || url.searchParams.get('host') || undefined);
      port = port ?? (url.port || undefined);
      database = database ?? (url.pathname.replace(/^\//, '') || undefined);
    } catch {
      // An unparsable connection string: name nothing rather than risk echoing a password.
    }
  }
  return `${host ?? process.env.PGHOST ?? 'localhost'}:${port ?? process.env.PGPORT ?? '5432'}/${database ?? process.env.PGDATABASE ?? ''}`;
}

function scrub(message: string, pool: Pick<pg.Pool, 'options'>): string {
  const o = pool.options as pg.PoolConfig;
  const secrets: string[] = [];
  if (typeof o.password === 'string' && o.password !== '') secrets.push(o.password);
  if (o.connectionString) {
    try {
      const pw = new URL(o.connectionString).password;
      if (pw) secrets.push(pw, decodeURIComponent(pw));
    } catch {}
  }
  return secrets.reduce((m, secret) => m.split(secret).join('***'), message);
}

/**
 * Turns driver errors into our hierarchy: unreachable or overloaded servers become UnavailableError
 * (retryable) naming the host, rejected credentials a ConfigError. Our own errors and SQL errors pass
 * through unchanged.
 */
export function translatePgError(error: unknown, pool: Pick<pg.Pool, 'options'>, doing = ''): unknown {
  if (error instanceof OffloadError || !(error instanceof Error)) return error;
  const code = (error as { code?: unknown }).code;
  const target = describeTarget(pool);
  // Node reports a refused dual-stack connect as an AggregateError with an empty message.
  const message = scrub(error.message || (typeof code === 'string' ? code : error.name), pool);
  // invalid_catalog_name: the server answers, the database named in the URL is not there.
  if (code === '3D000')
    return new ConfigError(
      `Postgres at ${target}: ${message}; check the database name at the end of DATABASE_URL, or create it (CREATE DATABASE ...)`,
      { target, code },
    );
  if (typeof code === 'string' && (code === '28P01' || code === '28000'))
    return new ConfigError(
      `Postgres at ${target} refused the credentials: ${message}; check the user and password in DATABASE_URL`,
      { target, code },
    );
  const transient =
    (typeof code === 'string' && (NETWORK_CODES.has(code) || isTransientSqlState(code))) ||
    /Connection terminated|connection timeout|timeout expired|Client has encountered a connection error/i.test(
      error.message,
    );
  if (transient)
    return new UnavailableError(
      `Postgres at ${target} is unavailable${doing ? ` while trying to ${doing}` : ''} (${message}); check DATABASE_URL and that the server is running and reachable, then retry`,
      { target, code: typeof code === 'string' ? code : undefined },
    );
  return error;
}
