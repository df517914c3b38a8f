import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { defaultConfig, tableByName } from '../../src/config/load.ts';
import { InvalidMetadataError } from '../../src/errors.ts';
import { parseJson, stringifyJson } from '../../src/iceberg/json.ts';
import { partitionType } from '../../src/iceberg/manifest.ts';
import { ancestry, parseTableMetadata, serializeTableMetadata } from '../../src/iceberg/metadata.ts';
import { newTableMetadata } from '../../src/iceberg/new-table.ts';

const fixture = readFileSync(new URL('./fixtures/metadata-v2.json', import.meta.url), 'utf8');
// biome-ignore lint/suspicious/noExplicitAny: fixtures are edited as free-form JSON trees
type Raw = { [k: string]: any };

/** The fixture with one change, serialized losslessly. */
function mutate(change: (m: Raw) => void): string {
  const m = parseJson(fixture) as Raw;
  change(m);
  return stringifyJson(m);
}

describe('table metadata v2', () => {
  it('keeps 64-bit snapshot ids exact where JSON.parse rounds them', () => {
    expect(JSON.parse(fixture)['current-snapshot-id']).toBe(9007199254740992); // the corruption we avoid
    const m = parseTableMetadata(fixture);
    expect(m['current-snapshot-id']).toBe(9007199254740993n);
    expect(m.snapshots.map((s) => s['snapshot-id'])).toEqual([7234567890123456789n, 9007199254740993n]);
    expect(m.refs.audit).toEqual({
      'snapshot-id': 7234567890123456789n,
      type: 'tag',
      'max-ref-age-ms': 86400000,
    });
    expect([...ancestry(m)].map((s) => s.summary['k2.offload.batch-id'])).toEqual(['b2', 'b1']);
  });

  it('round-trips: parse, serialize, parse gives the same metadata, unknown members included', () => {
    const m = parseTableMetadata(fixture);
    const text = serializeTableMetadata(m);
    expect(text).toContain('"current-snapshot-id": 9007199254740993');
    expect(text).toContain('"snapshot-id": 7234567890123456789');
    expect(parseTableMetadata(text)).toEqual(m);
    expect(parseJson(text)).toMatchObject({ statistics: [], 'partition-statistics': [] });
    expect(m.schemas[1]?.fields[1]).toEqual({
      id: 2,
      name: 'ts',
      required: true,
      type: 'timestamptz',
      doc: 'event time',
    });
  });

  it('reads -1 and a missing current-snapshot-id as "no snapshot" and writes -1', () => {
    const empty = (m: Raw) => {
      m.snapshots = [];
      m.refs = {};
      m['snapshot-log'] = [];
    };
    for (const text of [
      mutate((m) => {
        empty(m);
        m['current-snapshot-id'] = -1n;
      }),
      mutate((m) => {
        empty(m);
        delete m['current-snapshot-id'];
      }),
    ]) {
      const m = parseTableMetadata(text);
      expect(m['current-snapshot-id']).toBeUndefined();
      expect(serializeTableMetadata(m)).toContain('"current-snapshot-id": -1');
    }
  });

  const invalid: Array<[string, (m: Raw) => void, string]> = [
    [
      'format version 1',
      (m) => (m['format-version'] = 1n),
      'format-version 1 is not supported; this writer reads and writes format version 2',
    ],
    ['no table-uuid', (m) => delete m['table-uuid'], 'table-uuid is required'],
    [
      'unknown current schema',
      (m) => (m['current-schema-id'] = 7n),
      'current-schema-id 7 does not exist in schemas (ids: 0, 1)',
    ],
    [
      'unknown default spec',
      (m) => (m['default-spec-id'] = 3n),
      'default-spec-id 3 does not exist in partition-specs (ids: 0)',
    ],
    [
      'unknown sort order',
      (m) => (m['default-sort-order-id'] = 2n),
      'default-sort-order-id 2 does not exist in sort-orders',
    ],
    ['duplicate schema id', (m) => (m.schemas[0]['schema-id'] = 1n), 'schema-id 1 appears more than once'],
    [
      'current snapshot missing',
      (m) => {
        m['current-snapshot-id'] = 5n;
        m.refs.main['snapshot-id'] = 5n;
      },
      'current-snapshot-id 5 does not exist in snapshots',
    ],
    [
      'dangling ref',
      (m) => (m.refs.audit['snapshot-id'] = 42n),
      'ref audit points at snapshot-id 42, which does not exist in snapshots',
    ],
    [
      'main disagrees with current',
      (m) => (m.refs.main['snapshot-id'] = 7234567890123456789n),
      'current-snapshot-id 9007199254740993 differs from the main branch ref (7234567890123456789)',
    ],
    [
      'last-column-id too low',
      (m) => (m['last-column-id'] = 5n),
      'last-column-id 5 is lower than the highest assigned field id 6',
    ],
    [
      'last-partition-id too low',
      (m) => (m['last-partition-id'] = 1001n),
      'last-partition-id 1001 is lower than the highest partition field id 1002',
    ],
    [
      'last-sequence-number too low',
      (m) => (m['last-sequence-number'] = 33n),
      'snapshot 9007199254740993 has sequence-number 34, greater than last-sequence-number 33',
    ],
    [
      'partition source not in schema',
      (m) => (m['partition-specs'][0].fields[0]['source-id'] = 99n),
      'partition field ts_day has source-id 99, which is not a field of the current schema',
    ],
    [
      'snapshot without operation',
      (m) => delete m.snapshots[1].summary.operation,
      'snapshots[1].summary.operation is required',
    ],
    [
      'unknown type',
      (m) => (m.schemas[1].fields[4].type = 'varchar'),
      'schemas[1].fields[4].type has unknown type "varchar"',
    ],
    ['id as text', (m) => (m['last-column-id'] = '6'), 'last-column-id must be an integer (long)'],
  ];
  for (const [name, change, message] of invalid)
    it(`refuses ${name}`, () => {
      const text = mutate(change);
      const error = (() => {
        try {
          parseTableMetadata(text, 'metadata.json');
        } catch (e) {
          return e;
        }
      })();
      expect(error).toBeInstanceOf(InvalidMetadataError);
      expect((error as Error).message).toBe(`metadata.json: ${message}`);
    });

  it('refuses text that is not JSON, naming the file', () => {
    expect(() =>
      parseTableMetadata('{"format-version": 2', 's3://b/t/metadata/00001-x.metadata.json'),
    ).toThrow(/^s3:\/\/b\/t\/metadata\/00001-x\.metadata\.json: not valid JSON/);
  });
});

describe('new table metadata from the table config', () => {
  const config = defaultConfig();
  const create = (name: string) =>
    newTableMetadata(tableByName(config, name), {
      location: 's3://w/cold/t/',
      tableUuid: 'u-1',
      nowMs: 1000,
    });

  it('numbers columns 1..N, then nested list and map ids; partition fields from 1000', () => {
    const m = create('silver_trades');
    const fields = m.schemas[0]?.fields ?? [];
    expect(fields.map((f) => f.id)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(fields.find((f) => f.name === 'trade_conditions')?.type).toEqual({
      type: 'list',
      'element-id': 21,
      element: 'string',
      'element-required': true,
    });
    expect(fields.find((f) => f.name === 'vendor_data')?.type).toMatchObject({
      'key-id': 22,
      'value-id': 23,
    });
    expect(fields.find((f) => f.name === 'source_sequence')).toMatchObject({ required: false, type: 'long' });
    expect(m['last-column-id']).toBe(24);
    expect(m['partition-specs'][0]?.fields).toEqual([
      { 'source-id': 13, 'field-id': 1000, name: 'timestamp_day', transform: 'day' },
      { 'source-id': 3, 'field-id': 1001, name: 'exchange', transform: 'identity' },
      { 'source-id': 6, 'field-id': 1002, name: 'asset_class', transform: 'identity' },
    ]);
    expect(m['last-partition-id']).toBe(1002);
    expect(m.location).toBe('s3://w/cold/t');
  });

  it('sets the write properties and a name mapping that covers nested fields', () => {
    const m = create('silver_trades');
    expect(m.properties).toMatchObject({
      'write.format.default': 'parquet',
      'write.parquet.compression-codec': 'zstd',
    });
    const mapping = parseJson(m.properties['schema.name-mapping.default'] ?? '') as Raw[];
    expect(mapping).toContainEqual({
      'field-id': 18n,
      names: ['vendor_data'],
      fields: [
        { 'field-id': 22n, names: ['key'] },
        { 'field-id': 23n, names: ['value'] },
      ],
    });
    expect(parseTableMetadata(serializeTableMetadata(m))).toEqual(m);
  });

  it('types partition values by transform: day -> int, identity -> source type', () => {
    const m = create('ohlcv_1m');
    expect(partitionType(m['partition-specs'][0]!, m.schemas[0]!)).toEqual([
      { name: 'window_start_month', id: 1000, type: 'int' },
      { name: 'exchange', id: 1001, type: 'string' },
    ]);
  });

  it('refuses a partition transform the column type does not allow', () => {
    const table = {
      ...tableByName(config, 'ohlcv_1m'),
      partitionSpec: [{ column: 'exchange', transform: 'day' }],
    };
    expect(() => newTableMetadata(table, { location: 's3://w/t', tableUuid: 'u', nowMs: 0 })).toThrow(
      'table ohlcv_1m: partition on exchange: transform day cannot be applied to type string',
    );
  });
});
