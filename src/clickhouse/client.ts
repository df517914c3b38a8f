import { createRequire } from 'node:module';
import { resolve } from 'node:path';
import { type ClickHouseClient, ClickHouseLogLevel, createClient } from '@clickhouse/client';
import { ConfigError, UnavailableError } from '../errors.ts';

export type ClickHouseOptions = {
  /** `CLICKHOUSE_URL` (`http(s)://user:password@host:port/database`): a remote server. */
  url?: string | undefined;
  /** Data directory of the embedded engine (chDB), used when no `url` is given. */
  dataDir: string;
  /** Per-request timeout for a remote server; staging a large window is one long request. */
  requestTimeoutMs?: number;
};

type ChdbModule = typeof import('chdb/connection');
type ClientConnection = NonNullable<NonNullable<Parameters<typeof createClient>[0]>['connection']>;
type Embedded = { path: string; client: ClickHouseClient; refs: number; close: () => Promise<void> };

/**
 * chDB binds one data directory per process; every caller of the same path shares one client, and
 * `close()` releases it when the last caller closes.
 */
let embedded: Embedded | undefined;
const embeddedClients = new WeakSet<ClickHouseClient>();
const labels = new WeakMap<ClickHouseClient, string>();

function openEmbedded(dataDir: string): ClickHouseClient {
  const path = resolve(dataDir);
  if (embedded && embedded.path !== path)
    throw new ConfigError(
      `the embedded ClickHouse (chDB) is already open on ${embedded.path}; one process can use only one chDB data directory, so ${path} cannot be opened too. Close the first client, or use the same data directory, or set CLICKHOUSE_URL for a server`,
      { open: embedded.path, requested: path },
    );
  if (embedded) {
    embedded.refs++;
    return embedded.client;
  }
  // The engine's allocator (jemalloc, which reads MALLOC_CONF when the library loads) keeps freed pages
  // for seconds, per arena: a batch staged in several statements ran each one on other threads' arenas
  // while the previous one's pages were still held, so its peak grew with its statements (one 40M-row
  // bronze batch, 7 statements: 489-496 MB). Returned within a second, 436-451 MB at the same speed
  // (bench/results.md). An operator's own MALLOC_CONF wins.
  process.env.MALLOC_CONF ??= 'dirty_decay_ms:1000';
  // chdb types the connection against @clickhouse/client-common, the client against its bundled copy of
  // the same interface; the two declarations differ only in their settings types.
  // Loaded on first use: the engine library alone adds ~160 MB of resident memory, which a process
  // talking to a remote server (a Lambda) should not pay.
  const { createChdbConnection } = createRequire(import.meta.url)('chdb/connection') as ChdbModule;
  const { connection, stop } = oneStatementAtATime(
    createChdbConnection({ path }) as unknown as ClientConnection,
  );
  const client = createClient({ connection });
  const closeClient = client.close.bind(client);
  // A signal closes the engine while the command may still be running a statement: the engine is torn
  // down only once that statement has ended, never under it, and the statements the command sends
  // afterwards are refused.
  const closeEngine = async () => {
    await stop();
    await closeClient();
  };
  const entry: Embedded = { path, client, refs: 1, close: closeEngine };
  client.close = async () => {
    if (embedded !== entry) return;
    entry.refs--;
    if (entry.refs > 0) return;
    embedded = undefined;
    await closeEngine();
  };
  embedded = entry;
  embeddedClients.add(client);
  labels.set(client, `embedded ClickHouse (chDB) at ${path}`);
  return client;
}

/**
 * The embedded engine runs one statement at a time. It shares this process's memory and cores, so
 * concurrent statements (tables of a layer staged in parallel) add memory without adding speed:
 * measured on 2 cores, three bronze tables staged concurrently took as long as one after another.
 * One at a time also lets a failure be cleaned up before anyone else queries: chDB hands the output a
 * failed query had already produced (say, part of a Parquet file) to the next query on the connection
 * as its result, so after any failure one throwaway query takes it.
 */
function oneStatementAtATime(connection: ClientConnection): {
  connection: ClientConnection;
  /** Refuses the statements not yet started and resolves when the one running has ended. */
  stop: () => Promise<void>;
} {
  const query = connection.query.bind(connection);
  const drain = () => query({ query: 'SELECT 1' }).catch(() => undefined);
  let tail: Promise<unknown> = Promise.resolve();
  let stopped = false;
  for (const method of ['query', 'exec', 'command', 'insert'] as const) {
    const run = (connection[method] as (params: unknown) => Promise<unknown>).bind(connection);
    const guarded = async (params: unknown) => {
      if (stopped) throw new Error('the embedded ClickHouse (chDB) is closed: this process is stopping');
      try {
        return readsLocalIceberg(params) ? await fromFilesystemRoot(() => run(params)) : await run(params);
      } catch (error) {
        await drain();
        throw error;
      }
    };
    Object.assign(connection, {
      [method]: (params: unknown) => {
        const result = tail.then(() => guarded(params));
        tail = result.catch(() => undefined);
        return result;
      },
    });
  }
  return {
    connection,
    stop: async () => {
      stopped = true;
      await tail;
    },
  };
}

/** A statement that reads an Iceberg table from the local filesystem (`icebergLocal(...)`). */
function readsLocalIceberg(params: unknown): boolean {
  const query = (params as { query?: unknown } | undefined)?.query;
  return typeof query === 'string' && /\bicebergLocal\s*\(/i.test(query);
}

/**
 * chDB lets `icebergLocal` read only below the working directory: its user files path is empty ("files
 * are everywhere", as `file()` treats it), but the Iceberg reader resolves that empty path against the
 * working directory. No setting, argument or config file changes it (chdb 3.4.0), and symlinks are
 * resolved before the check. So a warehouse outside the current folder is read with the working
 * directory at `/` for the duration of the statement, which runs alone (see `oneStatementAtATime`).
 * Every path this process uses is absolute by then, so nothing else depends on the working directory.
 */
async function fromFilesystemRoot<T>(run: () => Promise<T>): Promise<T> {
  let before: string;
  try {
    before = process.cwd();
    process.chdir('/');
  } catch {
    // A worker thread cannot change directory, and a deleted working directory has no name to return
    // to: run as is (a warehouse below the working directory still reads).
    return run();
  }
  try {
    return await run();
  } finally {
    process.chdir(before);
  }
}

/** The URL without its password (and without a `password` query parameter), for messages and logs. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '';
    parsed.searchParams.delete('password');
    return parsed.toString();
  } catch {
    return '(unparseable ClickHouse URL)';
  }
}

/**
 * A `@clickhouse/client` client on a remote server (`url`) or on the embedded engine (`dataDir`).
 * Either way callers use the same client API. Note for chDB: `clickhouse_settings` become `SET`
 * statements that stick to the process-wide session, so per-query settings go in a `SETTINGS` clause.
 */
export function openClickHouse(options: ClickHouseOptions): ClickHouseClient {
  if (!options.url) return openEmbedded(options.dataDir);
  let parsed: URL;
  try {
    parsed = new URL(options.url);
  } catch {
    throw new ConfigError(
      `CLICKHOUSE_URL ${JSON.stringify(redactUrl(options.url))} is not a URL; use http(s)://user:password@host:8123/database`,
      { url: redactUrl(options.url) },
    );
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')
    throw new ConfigError(
      `CLICKHOUSE_URL ${JSON.stringify(redactUrl(options.url))} must use http or https (the ClickHouse HTTP interface), got ${parsed.protocol}; for example http://localhost:8123`,
      { url: redactUrl(options.url) },
    );
  const client = createClient({
    url: options.url,
    request_timeout: options.requestTimeoutMs ?? 15 * 60_000,
    application: 'k2-offload',
    // Staging a large window is one long INSERT: progress headers keep idle load balancers from
    // cutting the connection before the server answers.
    clickhouse_settings: { send_progress_in_http_headers: 1, http_headers_progress_interval_ms: '60000' },
    // Every failure also comes back as an error that we translate and report once; the client's own
    // log would print it a second time, with a stack trace, on the CLI's stderr.
    log: { level: ClickHouseLogLevel.OFF },
  });
  labels.set(client, `ClickHouse at ${redactUrl(options.url)}`);
  return client;
}

export function isEmbedded(client: ClickHouseClient): boolean {
  return embeddedClients.has(client);
}

/** Where a client points, safe to print (no password). */
export function describeClickHouse(client: ClickHouseClient): string {
  return labels.get(client) ?? 'ClickHouse';
}

/**
 * Why a connection failed, never empty: a connect that tried several addresses (IPv4 and IPv6, or a
 * timeout per address) fails with an AggregateError whose own message is empty.
 */
export function errorReason(error: unknown): string {
  const e = error as Error & { code?: string; errors?: unknown[]; cause?: unknown };
  if (Array.isArray(e?.errors) && e.errors.length > 0)
    return [...new Set(e.errors.map(errorReason))].join('; ');
  return e?.message || e?.code || (e?.cause ? errorReason(e.cause) : '') || e?.name || String(error);
}

/** Fails fast with an `UnavailableError` naming the server when ClickHouse does not answer `SELECT 1`. */
export async function assertReachable(client: ClickHouseClient): Promise<void> {
  const where = describeClickHouse(client);
  let reason: string;
  try {
    const result = await client.ping({ select: true });
    if (result.success) return;
    reason = errorReason(result.error);
  } catch (error) {
    reason = errorReason(error);
  }
  throw new UnavailableError(
    `cannot reach ${where}: ${reason}. Check that the server is up and CLICKHOUSE_URL (host, port, user) is right`,
    { clickhouse: where },
  );
}

export type QueryParams = Record<string, unknown>;

/**
 * Runs a SELECT and returns its rows as objects. 64-bit integers arrive as strings from a server (its
 * JSON default) and as numbers from chDB, so callers convert them deliberately (`Number`, `BigInt`).
 * Values go through `{name:Type}` parameters.
 */
export async function queryRows<T>(
  client: ClickHouseClient,
  query: string,
  params?: QueryParams,
): Promise<T[]> {
  const result = await client.query({
    query,
    format: 'JSONEachRow',
    ...(params ? { query_params: params } : {}),
  });
  return result.json<T>();
}
