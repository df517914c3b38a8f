import { describe, expect, it } from 'vitest';
import { type TableConfig, tableConfigSchema } from '../../src/config/schema.ts';
import { SchemaDriftError } from '../../src/errors.ts';
import type { TableIdent } from '../../src/iceberg/catalog.ts';
import { fastAppend } from '../../src/iceberg/commit.ts';
import { evolveMetadata, evolveTable } from '../../src/iceberg/evolve.ts';
import { readManifest } from '../../src/iceberg/manifest.ts';
import { readManifestList } from '../../src/iceberg/manifest-list.ts';
import { MemoryCatalog } from '../../src/iceberg/memory-catalog.ts';
import { MemoryObjectStore } from '../../src/iceberg/memory-store.ts';
import {
  currentSchema,
  defaultSpec,
  parseTableMetadata,
  serializeTableMetadata,
  type TableMetadata,
} from '../../src/iceberg/metadata.ts';
import { newTableMetadata } from '../../src/iceberg/new-table.ts';
import { nextVersion, publishMetadata } from '../../src/iceberg/snapshot-update.ts';
import { createTable, loadTable } from '../../src/iceberg/table.ts';
import { wantedFromConfig } from '../../src/pipeline/evolve-table.ts';
import { makeBatch } from '../../src/plan/batch.ts';
import { ticks, ticksConfig, ticksParquet } from './parquet-fixtures.ts';

/** ticks' columns (ids 1..6, tags' element 7), changed as a test needs. */
function config(change: (c: Record<string, unknown>) => Record<string, unknown> = (c) => c): TableConfig {
  const base = ticksConfig();
  return tableConfigSchema.parse(change({ ...base, columns: base.columns.map((c) => ({ ...c })) }));
}
const withColumns = (
  edit: (columns: TableConfig['columns']) => Array<Partial<TableConfig['columns'][number]>>,
  extra: Record<string, unknown> = {},
) => config((c) => ({ ...c, columns: edit(c.columns as TableConfig['columns']), ...extra }));

const created = () =>
  newTableMetadata(ticksConfig(), { location: 'mem://w/test/ticks', tableUuid: 'u', nowMs: 1 });
const evolve = (metadata: TableMetadata, table: TableConfig) =>
  evolveMetadata(metadata, wantedFromConfig(table));
const refusal = (f: () => unknown) => {
  try {
    f();
  } catch (error) {
    expect(error).toBeInstanceOf(SchemaDriftError);
    return (error as Error).message;
  }
  throw new Error('expected a refusal');
};
/** Round trip through JSON: what another reader would get. */
const reread = (m: TableMetadata) => parseTableMetadata(serializeTableMetadata(m));
const mapping = (m: TableMetadata) => JSON.parse(m.properties['schema.name-mapping.default'] as string);

describe('schema evolution from the config', () => {
  it('the config as created: nothing to do', () => {
    expect(evolve(created(), ticksConfig()).changes).toEqual([]);
  });

  it('an added column becomes an optional field with the next id, in a new current schema; applying it again changes nothing', () => {
    const table = withColumns((cs) => [...cs, { name: 'venue', type: 'String', required: true }]);
    const { changes, metadata } = evolve(created(), table);
    expect(changes.map((c) => c.detail)).toEqual(['add optional column venue string (field id 8)']);
    const m = reread(metadata);
    expect(m.schemas.map((s) => s['schema-id'])).toEqual([0, 1]);
    expect([m['current-schema-id'], m['last-column-id']]).toEqual([1, 8]);
    expect(currentSchema(m).fields.at(-1)).toEqual({ id: 8, name: 'venue', required: false, type: 'string' });
    expect(m.schemas[0]?.fields.map((f) => f.name)).not.toContain('venue');
    expect(mapping(m).at(-1)).toEqual({ 'field-id': 8, names: ['venue'] });
    expect(currentSchema(m)['identifier-field-ids']).toEqual([1]);
    expect(evolve(m, table).changes).toEqual([]);
  });

  it('a nested column gets ids after last-column-id, never the ids of a dropped column', () => {
    const dropped = withColumns((cs) => cs.filter((c) => c.name !== 'qty'), { droppedColumns: ['qty'] });
    const first = evolve(created(), dropped).metadata;
    expect(first['last-column-id']).toBe(7);
    const table = withColumns(
      (cs) => [...cs.filter((c) => c.name !== 'qty'), { name: 'qty', type: 'Map(String, Int64)' }],
      {
        droppedColumns: [],
      },
    );
    const { changes, metadata } = evolve(first, table);
    expect(changes.map((c) => c.detail)).toEqual(['add optional column qty map<string, long> (field id 8)']);
    expect(currentSchema(metadata).fields.at(-1)).toMatchObject({
      id: 8,
      type: { type: 'map', 'key-id': 9, 'value-id': 10 },
    });
    expect(metadata['last-column-id']).toBe(10);
    // The old qty (id 5) leaves the name to the new one in the mapping: old files' qty is not the new qty.
    expect(mapping(metadata).filter((e: { names: string[] }) => e.names.includes('qty'))).toEqual([
      expect.objectContaining({ 'field-id': 8 }),
    ]);
  });

  it('safe promotions widen the column in place: int to long, decimal precision at the same scale', () => {
    const table = withColumns((cs) =>
      cs.map((c) =>
        c.name === 'qty'
          ? { ...c, type: 'Nullable(UInt32)' }
          : c.name === 'px'
            ? { ...c, type: 'Decimal(38, 4)' }
            : c,
      ),
    );
    const { changes, metadata } = evolve(created(), table);
    expect(changes.map((c) => c.detail)).toEqual([
      'widen px from decimal(18, 4) to decimal(38, 4)',
      'widen qty from int to long',
    ]);
    const fields = currentSchema(metadata).fields;
    expect(fields.find((f) => f.name === 'qty')).toEqual({
      id: 5,
      name: 'qty',
      required: false,
      type: 'long',
    });
    expect(fields.find((f) => f.name === 'px')?.type).toBe('decimal(38, 4)');
    expect(metadata['last-column-id']).toBe(7);
  });

  it.each([
    [
      'a narrowing',
      'id',
      'Int32',
      /column id: the Iceberg column is long, the config maps it to int, which is not a safe promotion/,
    ],
    [
      'a change of family',
      'sym',
      'Int64',
      /column sym: the Iceberg column is string, the config maps it to long/,
    ],
    [
      'a decimal scale change',
      'px',
      'Decimal(38, 6)',
      /column px: the Iceberg column is decimal\(18, 4\), the config maps it to decimal\(38, 6\)/,
    ],
    [
      'a list element type',
      'tags',
      'Array(Int32)',
      /column tags: the Iceberg column is list<string>, the config maps it to list<int>/,
    ],
  ])('%s is refused with both types, the procedure and the runbook', (_what, column, type, message) => {
    const table = withColumns((cs) => cs.map((c) => (c.name === column ? { ...c, type } : c)));
    const text = refusal(() => evolve(created(), table));
    expect(text).toMatch(message);
    expect(text).toMatch(
      /a new table and a backfill; nothing offloaded\. See docs\/runbooks\/schema-changes\.md$/,
    );
  });

  it('a rename given as renamedFrom keeps the field id; the name mapping keeps the old name for old files', () => {
    const table = withColumns((cs) =>
      cs.map((c) => (c.name === 'qty' ? { ...c, name: 'size', renamedFrom: 'qty' } : c)),
    );
    const { changes, metadata } = evolve(created(), table);
    expect(changes.map((c) => c.detail)).toEqual(['rename column qty to size (field id 5 kept)']);
    expect(currentSchema(metadata).fields.find((f) => f.id === 5)?.name).toBe('size');
    expect(mapping(metadata).find((e: { 'field-id': number }) => e['field-id'] === 5)).toEqual({
      'field-id': 5,
      names: ['qty', 'size'],
    });
    expect(evolve(metadata, table).changes).toEqual([]);
  });

  it('a rename is never guessed: a new name without renamedFrom is a new column, a renamedFrom naming nothing is refused', () => {
    const guessed = withColumns((cs) => cs.map((c) => (c.name === 'qty' ? { ...c, name: 'size' } : c)));
    expect(evolve(created(), guessed).changes.map((c) => c.kind)).toEqual(['add-column']);
    const wrong = withColumns((cs) =>
      cs.map((c) => (c.name === 'qty' ? { ...c, name: 'size', renamedFrom: 'qtty' } : c)),
    );
    expect(refusal(() => evolve(created(), wrong))).toMatch(
      /column size: renamedFrom qtty, but the Iceberg table has no column qtty \(nor size\)/,
    );
  });

  it('an optional column in droppedColumns leaves the current schema and stays in the older one', () => {
    const table = withColumns((cs) => cs.filter((c) => c.name !== 'qty'), { droppedColumns: ['qty'] });
    const { changes, metadata } = evolve(created(), table);
    expect(changes.map((c) => c.detail)).toEqual(['drop column qty (field id 5)']);
    expect(currentSchema(metadata).fields.map((f) => f.name)).toEqual(['id', 'ts', 'sym', 'px', 'tags']);
    expect(metadata.schemas[0]?.fields.map((f) => f.name)).toContain('qty');
    expect(evolve(metadata, table).changes).toEqual([]);
  });

  it('dropping a required column or a partition source is refused; a required column left out of the config too', () => {
    const required = withColumns((cs) => cs.filter((c) => c.name !== 'tags'), { droppedColumns: ['tags'] });
    expect(refusal(() => evolve(created(), required))).toMatch(
      /column tags: it is required in Iceberg, and readers may rely on it; dropping a required column is refused/,
    );
    const madeOptional = withColumns((cs) =>
      cs.map((c) => (c.name === 'tags' ? { ...c, required: false } : c)),
    );
    const relaxed = evolve(created(), madeOptional);
    expect(relaxed.changes.map((c) => c.detail)).toEqual(['make tags optional']);
    expect(evolve(relaxed.metadata, required).changes.map((c) => c.kind)).toEqual(['drop-column']);

    const partitioned = withColumns((cs) =>
      cs.map((c) => (c.name === 'sym' ? { ...c, required: false } : c)),
    );
    const symOptional = evolve(created(), partitioned).metadata;
    const dropSym = withColumns((cs) => cs.filter((c) => c.name !== 'sym'), {
      droppedColumns: ['sym'],
      partitionSpec: [{ column: 'ts', transform: 'day' }],
    });
    expect(refusal(() => evolve(symOptional, dropSym))).toMatch(
      /column sym: it is the source of a partition field/,
    );

    const leftOut = withColumns((cs) => cs.filter((c) => c.name !== 'tags'));
    expect(refusal(() => evolve(created(), leftOut))).toMatch(
      /column tags: another writer added it as a required column \(field id 6\); our rows cannot fill it/,
    );
  });

  it("another engine's optional column is kept and tolerated; its required column stops the table", () => {
    const foreign = (required: boolean): TableMetadata => {
      const m = created();
      const schema = { ...currentSchema(m), 'schema-id': 1 };
      schema.fields = [...schema.fields, { id: 8, name: 'note', required, type: 'string' }];
      return { ...m, schemas: [...m.schemas, schema], 'current-schema-id': 1, 'last-column-id': 8 };
    };
    expect(evolve(foreign(false), ticksConfig()).changes).toEqual([]);
    const added = withColumns((cs) => [...cs, { name: 'venue', type: 'String' }]);
    const both = evolve(foreign(false), added).metadata;
    expect(
      currentSchema(both)
        .fields.map((f) => [f.id, f.name])
        .slice(-2),
    ).toEqual([
      [8, 'note'],
      [9, 'venue'],
    ]);
    expect(refusal(() => evolve(foreign(true), ticksConfig()))).toMatch(
      /column note: another writer added it as a required column \(field id 8\)/,
    );
  });

  it('a changed partitionSpec becomes a new default spec; field ids of kept fields stay; going back reuses the old spec', () => {
    const table = config((c) => ({
      ...c,
      partitionSpec: [
        { column: 'ts', transform: 'hour' },
        { column: 'sym', transform: 'identity' },
      ],
    }));
    const { changes, metadata } = evolve(created(), table);
    expect(changes.map((c) => c.detail)).toEqual([
      'partition new data by hour(ts), identity(sym) (spec id 1; was day(ts), identity(sym))',
    ]);
    const m = reread(metadata);
    expect(m['partition-specs'].map((s) => s['spec-id'])).toEqual([0, 1]);
    expect(defaultSpec(m).fields.map((f) => [f.name, f['field-id']])).toEqual([
      ['ts_hour', 1002],
      ['sym', 1001],
    ]);
    expect(m['last-partition-id']).toBe(1002);
    const back = evolve(m, ticksConfig());
    expect([back.metadata['default-spec-id'], back.metadata['partition-specs'].length]).toEqual([0, 2]);
  });
});

const ident: TableIdent = { namespace: 'test', name: 'ticks' };
const location = 'mem://warehouse/test/ticks';

async function table() {
  const store = new MemoryObjectStore();
  const catalog = new MemoryCatalog();
  let now = 1_700_000_000_000;
  const deps = { store, catalog, clock: () => (now += 1000), sleep: async () => {} };
  await createTable(deps, { table: ident, config: ticksConfig(), location });
  const append = async (name: string, day: string, rows = 3) => {
    const uri = `${location}/data/${name}.parquet`;
    await store.put(uri, ticksParquet(ticks(rows, day, 'A')));
    const marker = { ...makeBatch('ticks', `${day}T00:00:00Z`, `${day}T01:00:00Z`), rows };
    return fastAppend(deps, { table: ident, marker, files: [uri] });
  };
  return { store, catalog, deps, append };
}

describe('schema updates in the catalog', () => {
  it('two cycles evolving at once: one metadata-only commit, the other finds nothing to do', async () => {
    const { deps, catalog, append } = await table();
    await append('a', '2024-01-01');
    const wanted = wantedFromConfig(withColumns((cs) => [...cs, { name: 'venue', type: 'String' }]));
    const results = await Promise.all([evolveTable(deps, ident, wanted), evolveTable(deps, ident, wanted)]);
    expect(results.map((r) => r.changes.length).sort()).toEqual([0, 1]);
    const { metadata, metadataLocation } = await loadTable(deps, ident);
    expect(metadataLocation).toBe(await catalog.currentMetadataLocation(ident));
    expect(metadata.schemas.map((s) => s['schema-id'])).toEqual([0, 1]);
    // Metadata only: the snapshot is the append's, no new one.
    expect(metadata.snapshots).toHaveLength(1);
  });

  it('manifests carry the schema they were written with; files written before the change need not hold the new column', async () => {
    const { deps, store, append } = await table();
    await append('a', '2024-01-01');
    await evolveTable(
      deps,
      ident,
      wantedFromConfig(withColumns((cs) => [...cs, { name: 'venue', type: 'String' }])),
    );
    // A file without venue (as a batch staged just before the change) commits; venue reads as null.
    const result = await append('b', '2024-01-02');
    expect(result.status).toBe('committed');
    const { metadata } = await loadTable(deps, ident);
    const snapshot = metadata.snapshots.at(-1);
    expect(snapshot?.['schema-id']).toBe(1);
    const lists = readManifestList(await store.get(snapshot!['manifest-list']));
    const schemaIds = await Promise.all(
      lists.map(async (l) => readManifest(await store.get(l.manifest_path)).metadata['schema-id']),
    );
    expect(schemaIds).toEqual(['1', '0']);
  });

  it("another writer's type change to one of our columns stops the table, naming both types", async () => {
    const { deps, append } = await table();
    await append('a', '2024-01-01');
    const { metadata, metadataLocation } = await loadTable(deps, ident);
    const schema = structuredClone(currentSchema(metadata));
    schema['schema-id'] = 1;
    const qty = schema.fields.find((f) => f.name === 'qty');
    if (qty) qty.type = 'long';
    const changed = {
      ...nextVersion(metadata, metadataLocation, 2e12),
      schemas: [...metadata.schemas, schema],
      'current-schema-id': 1,
    };
    await publishMetadata(
      deps,
      ident,
      metadataLocation,
      `${location}/metadata/00002-foreign.metadata.json`,
      changed,
    );
    const message = await evolveTable(deps, ident, wantedFromConfig(ticksConfig())).then(
      () => 'no error',
      (e: Error) => e.message,
    );
    expect(message).toMatch(
      /column qty: another writer changed its type from int to long, the config maps it to int/,
    );
  });
});
