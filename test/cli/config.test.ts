import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConfigSuggestion } from '../../src/cli/commands/config.ts';
import { generateTrades } from '../../src/clickhouse/demo-trades.ts';
import { defaultConfig, parseConfig, tableByName } from '../../src/config/load.ts';
import type { CyclePreview } from '../../src/pipeline/preview.ts';
import { TEST_NOW } from '../support/clock.ts';
import { openWorld, type World } from '../support/world.ts';
import { cli } from './support.ts';

const TABLE = 'bronze_trades_kraken';

/** `k2-offload config suggest`: a config matching the ClickHouse tables as they are now. */
describe('k2-offload config suggest', () => {
  let world: World;
  let env: NodeJS.ProcessEnv;
  const run = (argv: string[]) => cli(argv, env, () => TEST_NOW);

  beforeAll(async () => {
    world = await openWorld();
    env = {
      K2_HOME: world.dir,
      WAREHOUSE: join(world.dir, 'warehouse'),
      DATABASE_URL: world.databaseUrl,
    };
    await generateTrades(world.clickhouse, {
      rows: 600,
      spanHours: 1,
      end: new Date(TEST_NOW.getTime() - 10 * 60_000),
      lateFraction: 0,
      seed: 4,
    });
    expect((await run(['run', '--tables', TABLE])).code).toBe(0);
  });
  afterAll(() => world?.close());

  it('with ClickHouse as configured: the same columns, and says so', async () => {
    const r = await run(['config', 'suggest']);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('Every selected table already matches ClickHouse.\n');
    const suggested = parseConfig(r.json(), 'suggested');
    expect(suggested.tables.map((t) => t.columns)).toEqual(defaultConfig().tables.map((t) => t.columns));
  });

  it('after ALTERs: stdout is a loadable config with the new and widened columns, stderr the change per table', async () => {
    await world.clickhouse.command({
      query: `ALTER TABLE k2.${TABLE} ADD COLUMN venue LowCardinality(String)`,
    });
    await world.clickhouse.command({ query: `ALTER TABLE k2.${TABLE} MODIFY COLUMN kafka_partition UInt32` });
    const r = await run(['config', 'suggest', '--tables', TABLE]);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe(
      [
        `${TABLE}:`,
        '  ~ {"name":"kafka_partition","type":"UInt32","required":true} (was UInt16)',
        '  + {"name":"venue","type":"LowCardinality(String)"}',
        '',
      ].join('\n'),
    );
    const path = join(world.dir, 'suggested.json');
    await writeFile(path, r.stdout);
    const suggested = parseConfig(r.json(), path);
    const columns = tableByName(suggested, TABLE).columns;
    expect(columns.find((c) => c.name === 'kafka_partition')).toMatchObject({
      type: 'UInt32',
      required: true,
    });
    expect(columns.at(-1)).toMatchObject({ name: 'venue', type: 'LowCardinality(String)', required: false });
    // Tables not selected are printed as configured.
    expect(tableByName(suggested, 'bronze_trades_binance')).toEqual(
      tableByName(defaultConfig(), 'bronze_trades_binance'),
    );

    const again = await run(['config', 'suggest', '--config', path, '--json']);
    expect((again.json() as ConfigSuggestion).changes).toEqual({});

    // plan says what the cycle would do: stop the table under the old config, evolve it under the new.
    const stopped = (await run(['plan', '--tables', TABLE, '--json'])).json() as CyclePreview;
    expect(stopped.tables.find((t) => t.table === TABLE)?.skip?.detail).toMatch(
      /^SchemaDriftError: table bronze_trades_kraken: schema drift/,
    );
    const evolving = await run(['plan', '--tables', TABLE, '--config', path]);
    expect(evolving.code).toBe(0);
    const preview = (
      await run(['plan', '--tables', TABLE, '--config', path, '--json'])
    ).json() as CyclePreview;
    expect(preview.tables.find((t) => t.table === TABLE)?.schemaChanges).toEqual([
      'widen kafka_partition from int to long',
      'add optional column venue string (field id 11)',
    ]);
    expect(evolving.stdout).toContain('Iceberg schema first: widen kafka_partition from int to long');
  });

  it('an unknown action is bad usage, exit 2', async () => {
    const r = await run(['config', 'sugest']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      'k2-offload config: unknown action "sugest"; use suggest (see k2-offload config --help)\n',
    );
  });
});
