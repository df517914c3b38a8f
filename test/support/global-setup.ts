import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { startEmbeddedPostgres } from '../../src/postgres/embedded.ts';

/**
 * Tests run against a real Postgres: `PG_URL` when set (CI points it at the machine's cluster),
 * otherwise an embedded server started here for the whole run.
 */
export default async function setup(project: TestProject) {
  if (process.env.PG_URL) {
    project.provide('pgUrl', process.env.PG_URL);
    return;
  }
  const dir = await mkdtemp(join(tmpdir(), 'k2-test-pg-'));
  // As root the server runs as the `postgres` user, which must be able to enter this directory.
  await chmod(dir, 0o755);
  const pg = await startEmbeddedPostgres(join(dir, 'data'));
  project.provide('pgUrl', pg.url);
  return async () => {
    await pg.stop();
    await rm(dir, { recursive: true, force: true });
  };
}

declare module 'vitest' {
  export interface ProvidedContext {
    pgUrl: string;
  }
}
