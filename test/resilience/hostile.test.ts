import { beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_TABLES } from '../../src/config/defaults.ts';
import { defaultConfig, parseConfig } from '../../src/config/load.ts';
import type { OffloadConfig } from '../../src/config/schema.ts';
import { ConfigError } from '../../src/errors.ts';
import { runCycle } from '../../src/pipeline/local-runner.ts';
import { useFedRig } from './fed-rig.ts';
import { CYCLE_MS, stateOf } from './harness.ts';

/**
 * Bad input gets a clear error and loses nothing (QUALITY.md): names that try to be SQL, in the config
 * and in the execution input, and malformed execution input. "Nothing written" is checked on everything
 * a cycle could touch (`stateOf`). Hostile state (metadata, drift, a watermark set ahead): hostile-state.test.ts.
 */
describe('hostile names and input', () => {
  const fed = useFedRig({ name: 'hostile', seed: 41, rowsPerHour: 1500, hours: 3 });
  const { clock } = fed;
  beforeAll(async () => {
    await runCycle(fed.rig.deps(), {});
    clock.advance(CYCLE_MS);
    await fed.feed();
  });

  it('SQL-ish table and column names in config are refused at load, naming the field', () => {
    const bronze = DEFAULT_TABLES[0] as Record<string, unknown>;
    const cases: Array<[string, Record<string, unknown>, RegExp]> = [
      ['table name', { name: 'x; DROP TABLE k2.silver_trades' }, /tables\.0\.name/],
      [
        'source table',
        { source: { database: 'k2', table: 'bronze_trades_binance` --' } },
        /tables\.0\.source\.table/,
      ],
      [
        'source database',
        { source: { database: "k2' OR '1'='1", table: 't' } },
        /tables\.0\.source\.database/,
      ],
      [
        'target namespace',
        { target: { namespace: '../../etc', name: 'passwd' } },
        /tables\.0\.target\.namespace/,
      ],
      [
        'column name',
        { columns: [{ name: 'price); DROP TABLE k2.bronze_trades_binance; --', type: 'String' }] },
        /tables\.0\.columns\.0\.name/,
      ],
      [
        'cursor column',
        { cursor: { kind: 'ingestion_time', column: 'ingestion_timestamp OR 1=1' } },
        /cursor\.column/,
      ],
      ['natural key', { naturalKey: ['symbol', "sequence_number'--"] }, /naturalKey\.1/],
      ['column type', { columns: [{ name: 'x', type: "String') ENGINE = Log; --" }] }, /column x/],
    ];
    for (const [what, change, field] of cases) {
      const raw = { tables: [{ ...bronze, ...change }, ...DEFAULT_TABLES.slice(1)] };
      expect(() => parseConfig(raw, 'tables.json'), what).toThrow(ConfigError);
      expect(() => parseConfig(raw, 'tables.json'), what).toThrow(field);
    }
    const candle = DEFAULT_TABLES.find((t) => t.name === 'ohlcv_1m') as Record<string, unknown>;
    const reaggregate = candle.reaggregate as { groupBy: string[]; columns: Record<string, string> };
    const injected = {
      ...candle,
      reaggregate: {
        ...reaggregate,
        columns: { ...reaggregate.columns, volume: 'sum(volume)); DROP TABLE k2.ohlcv_1m; --' },
      },
    };
    const raw = { tables: DEFAULT_TABLES.map((t) => (t.name === 'ohlcv_1m' ? injected : t)) };
    expect(() => parseConfig(raw)).toThrow(/reaggregate\.columns\.volume: .* must be fn\(column\)/);
  });

  it('a config that skipped validation still cannot put a name into SQL: the step refuses, nothing is written', async () => {
    const before = await stateOf(fed.rig);
    const base = defaultConfig();
    const hostile: OffloadConfig = {
      tables: base.tables.map((t) =>
        t.name === 'bronze_trades_kraken'
          ? { ...t, source: { database: 'k2', table: 'bronze_trades_kraken; DROP TABLE k2.silver_trades' } }
          : t,
      ),
    };
    const result = await runCycle(fed.rig.deps({ config: hostile }), { tables: ['bronze_trades_kraken'] });
    const kraken = result.passes.flatMap((p) => p.tables).find((t) => t.table === 'bronze_trades_kraken');
    expect(kraken?.status).toBe('failed');
    expect(kraken?.error).toMatch(/not a plain identifier/);
    const after = await stateOf(fed.rig);
    expect(after.clickhouse).toEqual(before.clickhouse);
    expect(after.metadata).toEqual(before.metadata);
    const w = await fed.rig.deps().watermarks.get('bronze_trades_kraken');
    expect(w.cursor).toBe(before.watermarks.find(([t]) => t === 'bronze_trades_kraken')?.[1]);
  });

  it('SQL-ish or unknown names in the tables input are refused before anything is written', async () => {
    const before = await stateOf(fed.rig);
    const cases: Array<[unknown, RegExp]> = [
      [
        { tables: ['bronze_trades_binance; DROP TABLE k2.silver_trades'] },
        /execution input tables\.0: must be a configured table name/,
      ],
      [{ tables: ["silver_trades' OR '1'='1"] }, /execution input tables\.0/],
      [{ tables: ['`k2`.`silver_trades`'] }, /execution input tables\.0/],
      [
        { tables: ['silver_trades', 'no_such_table'] },
        /unknown table "no_such_table"; configured tables: bronze_trades_binance/,
      ],
    ];
    for (const [input, message] of cases)
      await expect(runCycle(fed.rig.deps(), input), JSON.stringify(input)).rejects.toThrow(message);
    expect(await stateOf(fed.rig)).toEqual(before);
  });

  it('malformed state machine input fails at PlanCycle with the field named, before anything is written', async () => {
    const before = await stateOf(fed.rig);
    const future = new Date(clock.now().getTime() + 3_600_000).toISOString();
    const cases: Array<[unknown, RegExp]> = [
      ['bronze_trades_binance', /execution input \(input\): .*expected \{"tables"/],
      [[1, 2], /execution input \(input\)/],
      [{ tables: 'bronze_trades_binance' }, /execution input tables: /],
      [{ tables: [] }, /execution input tables: /],
      [{ tables: [42] }, /execution input tables\.0: /],
      [{ until: 'yesterday' }, /execution input until: /],
      [{ until: '2026-13-45T99:00:00Z' }, /execution input until: /],
      [{ until: future }, /until .* is in the future/],
      [{ table: 'silver_trades' }, /execution input \(input\): .*\(table\)/],
      [{ cycleId: '' }, /execution input cycleId: /],
    ];
    for (const [input, message] of cases)
      await expect(runCycle(fed.rig.deps(), input), JSON.stringify(input)).rejects.toThrow(message);
    expect(await stateOf(fed.rig)).toEqual(before);
  });
});
