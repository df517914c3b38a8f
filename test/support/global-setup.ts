import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { embeddedDataDirs, startEmbeddedPostgres } from '../../src/postgres/embedded.ts';

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
  const pg = await startEmbeddedPostgres(join(dir, 'data'));
  project.provide('pgUrl', pg.url);
  return async () => {
    await pg.stop();
    for (const data of await embeddedDataDirs(join(dir, 'data')))
      await rm(data, { recursive: true, force: true });
    await rm(dir, { recursive: true, force: true });
  };
}

declare module 'vitest' {
  export interface ProvidedContext {
    pgUrl: string;
  }
}
