import { PassThrough } from 'node:stream';
import avsc from 'avsc';
import { describe, expect, it } from 'vitest';
import { readContainer, writeContainer } from '../../src/avro/container.ts';
import type { AvroSchema } from '../../src/avro/schema.ts';
import { readWithAvsc, withBigLongs } from '../support/avsc-reader.ts';

// The shape of an Iceberg manifest entry: ids as attributes, optional unions, int-keyed maps as arrays.
const schema: AvroSchema = {
  type: 'record',
  name: 'manifest_entry',
  fields: [
    { name: 'status', type: 'int', 'field-id': 0 },
    { name: 'snapshot_id', type: ['null', 'long'], default: null, 'field-id': 1 },
    {
      name: 'data_file',
      'field-id': 2,
      type: {
        type: 'record',
        name: 'r2',
        fields: [
          { name: 'file_path', type: 'string', 'field-id': 100 },
          { name: 'record_count', type: 'long', 'field-id': 103 },
          {
            name: 'lower_bounds',
            'field-id': 125,
            default: null,
            type: [
              'null',
              {
                type: 'array',
                logicalType: 'map',
                items: {
                  type: 'record',
                  name: 'k126_v127',
                  fields: [
                    { name: 'key', type: 'int', 'field-id': 126 },
                    { name: 'value', type: 'bytes', 'field-id': 127 },
                  ],
                },
              },
            ],
          },
          { name: 'key_metadata', type: ['null', 'bytes'], default: null, 'field-id': 131 },
          { name: 'uuid', type: { type: 'fixed', name: 'uuid_fixed', size: 16 }, 'field-id': 150 },
          { name: 'ratio', type: 'double', 'field-id': 151 },
          { name: 'flag', type: 'boolean', 'field-id': 152 },
          { name: 'tags', type: { type: 'map', values: 'string' }, 'field-id': 153 },
        ],
      },
    },
  ],
};

const records = Array.from({ length: 300 }, (_, i) => ({
  status: i % 3,
  snapshot_id: i % 2 === 0 ? null : 9_007_199_254_740_993n + BigInt(i), // above 2^53
  data_file: {
    file_path: `s3://bucket/warehouse/cold/t/data/part-${i}.parquet`,
    record_count: BigInt(i * 1000),
    lower_bounds: i % 5 === 0 ? null : [{ key: 1, value: new Uint8Array([i & 0xff, 2, 3]) }],
    key_metadata: null,
    uuid: new Uint8Array(16).fill(i & 0xff),
    ratio: i / 7,
    flag: i % 2 === 0,
    tags: { é: 'ü', [`k${i}`]: 'v' },
  },
}));

async function decodeWithAvsc(bytes: Uint8Array) {
  const { records, meta } = await readWithAvsc(bytes);
  return { records, header: { meta } };
}

// avsc returns Buffers and class instances; normalize both sides to plain values for comparison.
const plain = (v: unknown): unknown => {
  if (v instanceof Uint8Array) return Array.from(v);
  if (Array.isArray(v)) return v.map(plain);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
  return v;
};

describe('Avro container files', () => {
  for (const codec of ['null', 'deflate'] as const) {
    it(`our ${codec} file is read by avsc with the same records and the field ids kept in the schema`, async () => {
      const bytes = writeContainer({
        schema,
        records,
        codec,
        recordsPerBlock: 128,
        metadata: { 'format-version': '2' },
      });
      const { records: decoded, header } = await decodeWithAvsc(bytes);
      expect(plain(decoded)).toEqual(plain(records));
      expect(JSON.parse(header?.meta['avro.schema']?.toString() ?? '')).toEqual(schema);
      expect(header?.meta['format-version']?.toString()).toBe('2');
      expect(header?.meta['avro.codec']?.toString()).toBe(codec);
    });
  }

  it('reads what avsc writes (deflate), longs above 2^53 intact', async () => {
    // `metadata` is an encoder option avsc supports but does not declare in its types.
    const options = {
      codec: 'deflate',
      blockSize: 2048,
      metadata: { 'partition-spec-id': Buffer.from('0') },
    };
    const encoder = new avsc.streams.BlockEncoder(
      withBigLongs(schema),
      options as ConstructorParameters<typeof avsc.streams.BlockEncoder>[1],
    );
    const chunks: Buffer[] = [];
    const sink = new PassThrough();
    sink.on('data', (c: Buffer) => chunks.push(c));
    const done = new Promise((resolve) => sink.on('end', resolve));
    encoder.pipe(sink);
    // avsc wants Buffers where we use Uint8Array.
    const toBuffers = (v: unknown): unknown =>
      v instanceof Uint8Array
        ? Buffer.from(v)
        : Array.isArray(v)
          ? v.map(toBuffers)
          : v && typeof v === 'object'
            ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, toBuffers(x)]))
            : v;
    for (const r of records) encoder.write(toBuffers(r));
    encoder.end();
    await done;
    const file = readContainer(new Uint8Array(Buffer.concat(chunks)));
    expect(file.codec).toBe('deflate');
    expect(file.metadata['partition-spec-id']).toBe('0');
    expect(plain(file.records)).toEqual(plain(records));
    expect((file.records[1] as { snapshot_id: bigint }).snapshot_id).toBe(9_007_199_254_740_994n);
  });

  it('round-trips through our reader and is byte-identical for identical input', () => {
    const a = writeContainer({ schema, records, codec: 'deflate' });
    const b = writeContainer({ schema, records, codec: 'deflate' });
    expect(Buffer.from(a).equals(Buffer.from(b))).toBe(true);
    const file = readContainer(a);
    expect(file.schema).toEqual(schema);
    expect(plain(file.records)).toEqual(plain(records));
  });

  it('refuses values that do not fit the schema, naming the field', () => {
    const bad = { ...records[0], data_file: { ...records[0]?.data_file, record_count: 'many' } };
    expect(() => writeContainer({ schema, records: [bad] })).toThrow(
      'Avro encode record 0.data_file.record_count: expected long, got "many"',
    );
  });

  it('refuses corrupt files with the reason', () => {
    const bytes = writeContainer({ schema, records: records.slice(0, 3), codec: 'null' });
    expect(() => readContainer(bytes.slice(1))).toThrow('not an Avro object container file (bad magic)');
    const truncated = bytes.slice(0, bytes.length - 5);
    expect(() => readContainer(truncated)).toThrow(/Avro data ends early/);
  });
});
