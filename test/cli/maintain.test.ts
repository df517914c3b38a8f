import { utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TableMaintenance } from '../../src/cli/commands/maintain.ts';
import { generateTrades } from '../../src/clickhouse/demo-trades.ts';
import { tableByName } from '../../src/config/load.ts';
import { DEFAULT_ORPHAN_GRACE_MS } from '../../src/iceberg/maintenance/orphans.ts';
import { loadTable } from '../../src/iceberg/table.ts';
import { runCycle } from '../../src/pipeline/local-runner.ts';
import { targetOf } from '../../src/pipeline/plan-cycle.ts';
import { TEST_NOW } from '../support/clock.ts';
import { openWorld, type World } from '../support/world.ts';
import { cli } from './support.ts';

const TABLE = 'bronze_trades_kraken';
const MIN = 60_000;
const HOUR = 60 * MIN;

/**
 * Orphan removal by default keeps what a commit in flight may still adopt: a file written (staged, or a
 * manifest of an unfinished commit) an hour ago is not an orphan yet under a default `maintain`.
 */
describe('k2-offload maintain: the default orphan grace', () => {
  let world: World;
  let env: NodeJS.ProcessEnv;
  // One instant for the cycle, the files' ages and maintain: the world's.
  const now = TEST_NOW;
  const clock = () => now;
  const aged = async (name: string, ageMs: number) => {
    const deps = world.deps();
    const { metadata } = await loadTable(deps, targetOf(tableByName(deps.config, TABLE)));
    const uri = `${metadata.location}/data/unfinished-${name}/part-00000.parquet`;
    await deps.store.put(uri, new TextEncoder().encode('PAR1 staged by a commit that has not finished'));
    const at = new Date(now.getTime() - ageMs);
    await utimes(fileURLToPath(uri), at, at);
    return uri;
  };
  const exists = async (uri: string) => (await world.deps().store.head(uri)) !== undefined;

  beforeAll(async () => {
    world = await openWorld();
    env = { K2_HOME: world.dir, WAREHOUSE: join(world.dir, 'warehouse'), DATABASE_URL: world.databaseUrl };
    await generateTrades(world.clickhouse, {
      rows: 1000,
      spanHours: 1,
      end: new Date(now.getTime() - 10 * MIN),
      seed: 5,
    });
    await runCycle(world.deps(), { tables: [TABLE] });
  });
  afterAll(() => world?.close());

  it('keeps an unreferenced file younger than the grace, removes one older than it', async () => {
    const fresh = await aged('fresh', HOUR);
    const old = await aged('old', DEFAULT_ORPHAN_GRACE_MS + HOUR);

    const r = await cli(['maintain', '--table', TABLE, '--json'], env, clock);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect((r.json() as { tables: TableMaintenance[] }).tables[0]).toMatchObject({
      result: 'done',
      orphanFiles: 1,
    });
    expect([await exists(fresh), await exists(old)]).toEqual([true, false]);

    // The grace is the operator's to shorten: with none, the younger file goes too.
    const none = await cli(['maintain', '--table', TABLE, '--orphan-grace-days', '0', '--json'], env, clock);
    expect(none.code).toBe(0);
    expect(await exists(fresh)).toBe(false);
  });

  it('says the default grace in its help', async () => {
    const r = await cli(['maintain', '--help'], env, clock);
    expect(r.stdout).toContain(`(default ${DEFAULT_ORPHAN_GRACE_MS / 86_400_000})`);
  });
});
