import { describe, expect, it } from 'vitest';
import { auditTables } from '../../src/audit/audit.ts';
import { icebergTableFunction } from '../../src/audit/iceberg-source.ts';
import { parseConfig } from '../../src/config/load.ts';
import type { OffloadConfig, TableConfig } from '../../src/config/schema.ts';
import { compactTable } from '../../src/iceberg/maintenance/index.ts';
import { readManifest } from '../../src/iceberg/manifest.ts';
import { readManifestList } from '../../src/iceberg/manifest-list.ts';
import { currentSchema, type TableMetadata } from '../../src/iceberg/metadata.ts';
import { nextVersion, publishMetadata } from '../../src/iceberg/snapshot-update.ts';
import { liveDataFiles, loadTable } from '../../src/iceberg/table.ts';
import { collectHealth } from '../../src/pipeline/health.ts';
import { runCycle } from '../../src/pipeline/local-runner.ts';
import { stageBatch } from '../../src/pipeline/stage-batch.ts';
import { specProblems } from '../support/iceberg-spec-check.ts';
import { useOneTableRig } from './fed-rig.ts';
import { verifyTable } from './verify.ts';

/**
 * Schema changes of a live table, end to end: ClickHouse ALTERs, the config, cycles, and ClickHouse's
 * own Iceberg reader (which shares no code with our writer) reading old and new rows.
 */
describe('schema evolution of a bronze table', () => {
  const t = useOneTableRig({ name: 'schema-evolution', seed: 83 });
  const source = 'k2.bronze_trades_binance';
  const withColumns = (change: (columns: TableConfig['columns']) => unknown[]): OffloadConfig =>
    parseConfig(
      { tables: t.config.tables.map((table) => ({ ...table, columns: change(table.columns) })) },
      'evolved',
    );
  const addVenue = (cs: TableConfig['columns']) => [...cs, { name: 'venue', type: 'String' }];
  const retype = (name: string, type: string) => (cs: TableConfig['columns']) =>
    cs.map((c) => (c.name === name ? { ...c, type } : c));
  const cycle = async (config: OffloadConfig) => {
    await t.later();
    const result = await runCycle(t.deps({ config }), {});
    return result.passes.flatMap((p) => p.tables).find((o) => o.table === t.table);
  };
  const metadata = async () => (await loadTable(t.deps(), t.target)).metadata;
  const read = async <T>(sql: (from: string) => string) => {
    const { metadataLocation } = await loadTable(t.deps(), t.target);
    const result = await t.setup.rig.clickhouse.query({
      query: sql(icebergTableFunction(metadataLocation)),
      format: 'JSONEachRow',
    });
    return (await result.json()) as T[];
  };
  /** Every key once, every configured column equal to ClickHouse's, per chDB's Iceberg reader. */
  const expectSameRows = async (config: OffloadConfig) => {
    const table = config.tables[0] as TableConfig;
    const verdict = await verifyTable(t.deps({ config }), table);
    expect([verdict.missing, verdict.duplicated, verdict.extra, verdict.mismatched]).toEqual([
      [],
      [],
      [],
      [],
    ]);
    return verdict;
  };
  /** A metadata version written by another engine (pyiceberg's add_column and the like). */
  const foreignCommit = async (change: (m: TableMetadata) => TableMetadata) => {
    const d = t.deps();
    const { metadata: m, metadataLocation } = await loadTable(d, t.target);
    const next = change(nextVersion(m, metadataLocation, Date.now()));
    const location = metadataLocation.replace(/[^/]+$/, `99999-${Date.now()}-foreign.metadata.json`);
    await publishMetadata(d, t.target, metadataLocation, location, next);
  };
  const withField = (m: TableMetadata, field: { name: string; required: boolean }): TableMetadata => {
    const schema = structuredClone(currentSchema(m));
    const id = m['last-column-id'] + 1;
    schema.fields.push({ id, name: field.name, required: field.required, type: 'string' });
    schema['schema-id'] = Math.max(...m.schemas.map((s) => s['schema-id'])) + 1;
    return {
      ...m,
      schemas: [...m.schemas, schema],
      'current-schema-id': schema['schema-id'],
      'last-column-id': id,
    };
  };

  let addedConfig: OffloadConfig;
  let droppedConfig: OffloadConfig;
  let hourlyConfig: OffloadConfig;
  /** The first config's columns with kafka_partition widened: what every row, old or new, must equal. */
  const checkConfig = () =>
    parseConfig(
      {
        tables: t.config.tables.map((table) => ({
          ...table,
          columns: retype('kafka_partition', 'UInt32')(table.columns),
        })),
      },
      'check',
    );
  let rowsBefore = 0;

  it('a column added in ClickHouse but not in the config stops the table with the config change to make', async () => {
    rowsBefore = (await expectSameRows(t.config)).icebergRows;
    await t.setup.rig.clickhouse.command({
      query: `ALTER TABLE ${source} ADD COLUMN venue String DEFAULT concat('v-', symbol)`,
    });
    const before = await t.currentMetadata();
    const outcome = await cycle(t.config);
    expect(outcome?.status).toBe('failed');
    const w = await t.deps().watermarks.get(t.table);
    expect(w.lastError?.name).toBe('SchemaDriftError');
    expect(w.lastError?.message).toContain('  + {"name":"venue","type":"String"}');
    expect(await t.currentMetadata()).toBe(before);
    const health = await collectHealth(t.deps());
    expect(health.healthy).toBe(false);
    expect(health.problems.find((p) => p.table === t.table && p.code === 'schema')?.message).toMatch(
      /stopped by a schema change: .*venue/,
    );
  });

  it('added to the config too: an optional column with a new field id; old rows read null, new rows their values', async () => {
    addedConfig = withColumns(addVenue);
    const outcome = await cycle(addedConfig);
    expect(outcome?.status).toBe('succeeded');
    const m = await metadata();
    expect(m.schemas.map((s) => s['schema-id'])).toEqual([0, 1]);
    expect(m['current-schema-id']).toBe(1);
    expect(m['last-column-id']).toBe(11);
    expect(currentSchema(m).fields.at(-1)).toEqual({
      id: 11,
      name: 'venue',
      required: false,
      type: 'string',
    });
    // Manifests carry the schema they were written with: the new batch's 1, the first cycle's 0.
    const head = m.snapshots.find((s) => s['snapshot-id'] === m['current-snapshot-id']);
    expect(head?.['schema-id']).toBe(1);
    const store = t.deps().store;
    const lists = readManifestList(await store.get(head?.['manifest-list'] as string));
    const ids = await Promise.all(
      lists.map(async (l) => readManifest(await store.get(l.manifest_path)).metadata['schema-id']),
    );
    expect(new Set(ids)).toEqual(new Set(['0', '1']));
    expect(ids[0]).toBe('1');

    const split = await read<{ old: number; rows: string; filled: string }>(
      (from) => `SELECT venue IS NULL AS old, toString(count()) AS rows,
        toString(countIf(venue = concat('v-', symbol))) AS filled FROM ${from} GROUP BY old ORDER BY old`,
    );
    const newRows = (await expectSameRows(t.config)).icebergRows - rowsBefore;
    expect(newRows).toBeGreaterThan(0);
    expect(split).toEqual([
      { old: 0, rows: String(newRows), filled: String(newRows) },
      { old: 1, rows: String(rowsBefore), filled: '0' },
    ]);

    // The next cycle finds the table as the config wants it: no new schema.
    expect((await cycle(addedConfig))?.status).toBe('succeeded');
    expect((await metadata()).schemas).toHaveLength(2);
  });

  it('UInt16 widened to UInt32 in ClickHouse and the config: the Iceberg column goes from int to long, every row reads right', async () => {
    await t.setup.rig.clickhouse.command({
      query: `ALTER TABLE ${source} MODIFY COLUMN kafka_partition UInt32`,
    });
    const widened = parseConfig(
      {
        tables: addedConfig.tables.map((table) => ({
          ...table,
          columns: retype('kafka_partition', 'UInt32')(table.columns),
        })),
      },
      'widened',
    );
    expect((await cycle(widened))?.status).toBe('succeeded');
    const m = await metadata();
    expect([m['current-schema-id'], m['last-column-id']]).toEqual([2, 11]);
    expect(currentSchema(m).fields.find((f) => f.name === 'kafka_partition')).toEqual({
      id: 9,
      name: 'kafka_partition',
      required: true,
      type: 'long',
    });
    await expectSameRows(
      parseConfig(
        {
          tables: t.config.tables.map((table) => ({
            ...table,
            columns: retype('kafka_partition', 'UInt32')(table.columns),
          })),
        },
        'check',
      ),
    );
    addedConfig = widened;
  });

  it('a narrowing back to UInt16 is refused, naming the column, both types and the procedure; nothing written', async () => {
    await t.setup.rig.clickhouse.command({
      query: `ALTER TABLE ${source} MODIFY COLUMN kafka_partition UInt16`,
    });
    const narrowed = parseConfig(
      {
        tables: addedConfig.tables.map((table) => ({
          ...table,
          columns: retype('kafka_partition', 'UInt16')(table.columns),
        })),
      },
      'narrowed',
    );
    const before = await t.currentMetadata();
    const cursor = (await t.deps().watermarks.get(t.table)).cursor;
    expect((await cycle(narrowed))?.status).toBe('failed');
    const w = await t.deps().watermarks.get(t.table);
    expect(w.lastError?.name).toBe('SchemaDriftError');
    expect(w.lastError?.message).toBe(
      'table bronze_trades_binance: column kafka_partition: the Iceberg column is long, the config maps it to int, which is not a safe promotion (only int to long, float to double, decimal(P, S) to a larger P with the same S); the way to make this change is a new table and a backfill; nothing offloaded. See docs/runbooks/schema-changes.md',
    );
    expect([await t.currentMetadata(), w.cursor]).toEqual([before, cursor]);

    // Back to UInt32: the table goes on, nothing lost or doubled.
    await t.setup.rig.clickhouse.command({
      query: `ALTER TABLE ${source} MODIFY COLUMN kafka_partition UInt32`,
    });
    expect((await cycle(addedConfig))?.status).toBe('succeeded');
  });

  it("another engine's optional column is tolerated: our rows leave it null", async () => {
    await foreignCommit((m) => withField(m, { name: 'note', required: false }));
    const schemas = (await metadata()).schemas.length;
    expect((await cycle(addedConfig))?.status).toBe('succeeded');
    const m = await metadata();
    expect(m.schemas).toHaveLength(schemas);
    expect(
      currentSchema(m)
        .fields.map((f) => f.name)
        .slice(-2),
    ).toEqual(['venue', 'note']);
    const [notes] = await read<{ filled: string; rows: string }>(
      (from) => `SELECT toString(count(note)) AS filled, toString(count()) AS rows FROM ${from}`,
    );
    expect(notes?.filled).toBe('0');
    expect(Number(notes?.rows)).toBeGreaterThan(rowsBefore);
  });

  it("another engine's required column stops the table, health red, until it is made optional", async () => {
    await foreignCommit((m) => withField(m, { name: 'desk', required: true }));
    expect((await cycle(addedConfig))?.status).toBe('failed');
    const w = await t.deps().watermarks.get(t.table);
    expect(w.lastError?.message).toMatch(
      /column desk: another writer added it as a required column \(field id 13\); our rows cannot fill it/,
    );
    expect((await collectHealth(t.deps())).problems.some((p) => p.code === 'schema')).toBe(true);

    await foreignCommit((m) => {
      const schema = structuredClone(currentSchema(m));
      for (const f of schema.fields) if (f.name === 'desk') f.required = false;
      schema['schema-id'] += 1;
      return { ...m, schemas: [...m.schemas, schema], 'current-schema-id': schema['schema-id'] };
    });
    expect((await cycle(addedConfig))?.status).toBe('succeeded');
    await expectSameRows(t.config);
  });

  it('a rename in ClickHouse given as renamedFrom keeps the field id; rows written under the old name read under the new one', async () => {
    await t.setup.rig.clickhouse.command({
      query: `ALTER TABLE ${source} RENAME COLUMN venue TO trading_venue`,
    });
    const renamed = parseConfig(
      {
        tables: addedConfig.tables.map((table) => ({
          ...table,
          columns: table.columns.map((c) =>
            c.name === 'venue' ? { ...c, name: 'trading_venue', renamedFrom: 'venue' } : c,
          ),
        })),
      },
      'renamed',
    );
    expect((await cycle(renamed))?.status).toBe('succeeded');
    const m = await metadata();
    expect(currentSchema(m).fields.find((f) => f.id === 11)?.name).toBe('trading_venue');
    const [venues] = await read<{ filled: string; right: string }>(
      (from) =>
        `SELECT toString(count(trading_venue)) AS filled, toString(countIf(trading_venue = concat('v-', symbol))) AS right FROM ${from}`,
    );
    // Every row written since the column was added, under either name, reads under the new one.
    expect(Number(venues?.filled)).toBeGreaterThan(0);
    expect(venues?.right).toBe(venues?.filled);
    const [all] = await read<{ rows: string }>((from) => `SELECT toString(count()) AS rows FROM ${from}`);
    expect(Number(venues?.filled)).toBe(Number(all?.rows) - rowsBefore);
    addedConfig = renamed;
  });

  it('compaction merges files written under every schema so far: missing columns stay null, renamed ones keep their values', async () => {
    const venues = () =>
      read<{ filled: string; rows: string }>(
        (from) => `SELECT toString(count(trading_venue)) AS filled, toString(count()) AS rows FROM ${from}`,
      );
    const before = await venues();
    const result = await compactTable(
      { store: t.deps().store, catalog: t.deps().catalog },
      { table: t.target, clickhouse: t.setup.rig.clickhouse, targetFileRows: 1_000_000 },
    );
    expect(result.status).toBe('compacted');
    expect(result.removedFiles).toBeGreaterThan(result.addedFiles);
    expect(await venues()).toEqual(before);
    await expectSameRows(checkConfig());
  });

  it('a column dropped in ClickHouse and listed in droppedColumns leaves the current schema; every row still reads', async () => {
    await t.setup.rig.clickhouse.command({ query: `ALTER TABLE ${source} DROP COLUMN trading_venue` });
    const dropped = parseConfig(
      {
        tables: addedConfig.tables.map((table) => ({
          ...table,
          columns: table.columns.filter((c) => c.name !== 'trading_venue'),
          droppedColumns: ['trading_venue'],
        })),
      },
      'dropped',
    );
    expect((await cycle(dropped))?.status).toBe('succeeded');
    droppedConfig = dropped;
    const m = await metadata();
    expect(currentSchema(m).fields.map((f) => f.name)).not.toContain('trading_venue');
    expect(m.schemas.some((s) => s.fields.some((f) => f.name === 'trading_venue'))).toBe(true);
    await expectSameRows(
      parseConfig(
        {
          tables: t.config.tables.map((table) => ({
            ...table,
            columns: retype('kafka_partition', 'UInt32')(table.columns),
          })),
        },
        'check',
      ),
    );
  });

  it('a changed partitionSpec partitions new data by a new spec; old files keep theirs; audit and compaction work across both', async () => {
    const hourly = parseConfig(
      {
        tables: droppedConfig.tables.map((table) => ({
          ...table,
          partitionSpec: [{ column: 'exchange_timestamp', transform: 'hour' }],
        })),
      },
      'hourly',
    );
    expect((await cycle(hourly))?.status).toBe('succeeded');
    hourlyConfig = hourly;
    const m = await metadata();
    expect(
      m['partition-specs'].map((s) => [s['spec-id'], s.fields.map((f) => [f.name, f['field-id']])]),
    ).toEqual([
      [0, [['exchange_timestamp_day', 1000]]],
      [1, [['exchange_timestamp_hour', 1001]]],
    ]);
    expect([m['default-spec-id'], m['last-partition-id']]).toEqual([1, 1001]);
    const specs = new Set((await liveDataFiles(t.deps().store, m)).map((f) => f.specId));
    expect(specs).toEqual(new Set([0, 1]));
    await expectSameRows(checkConfig());

    const audit = await auditTables(t.deps({ config: hourly }), {
      hours: 72,
      reader: t.setup.rig.clickhouse,
    });
    expect(audit.ok).toBe(true);

    await t.later();
    await runCycle(t.deps({ config: hourly }), {});
    const compacted = await compactTable(
      { store: t.deps().store, catalog: t.deps().catalog },
      { table: t.target, clickhouse: t.setup.rig.clickhouse, targetFileRows: 1_000_000 },
    );
    expect(compacted.status).toBe('compacted');
    const after = await liveDataFiles(t.deps().store, await metadata());
    // Each merged file holds one partition of one spec.
    const hourSpec = after.filter((f) => f.specId === 1);
    expect(hourSpec.length).toBeGreaterThan(0);
    expect(hourSpec.every((f) => 'exchange_timestamp_hour' in f.file.partition)).toBe(true);
    await expectSameRows(checkConfig());
  });

  it('the evolved metadata passes a check that shares no code with the writer: schemas, specs, manifests, name mapping', async () => {
    const location = (await t.currentMetadata()) as string;
    expect(await specProblems(t.deps().store, location)).toEqual([]);
    const m = await metadata();
    expect(m.schemas.map((s) => s['schema-id'])).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
  });

  it('a batch planned under one config is not staged under another the table was not brought to', async () => {
    await t.later();
    const [batch] = await t.planOne({}, { config: hourlyConfig });
    if (!batch) throw new Error('expected a batch');
    const daily = parseConfig(
      {
        tables: hourlyConfig.tables.map((table) => ({
          ...table,
          partitionSpec: t.config.tables[0]?.partitionSpec,
        })),
      },
      'daily',
    );
    await expect(stageBatch(t.deps({ config: daily }), batch)).rejects.toThrow(
      /the Iceberg table is not at the config's schema yet \(partition new data by day\(exchange_timestamp\) \(spec id 0/,
    );
    await t.deps().watermarks.releaseLease(t.table, batch.leaseToken);
  });
});
