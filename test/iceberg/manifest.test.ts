import { describe, expect, it } from 'vitest';
import { writeContainer } from '../../src/avro/container.ts';
import type { AvroField, AvroSchema } from '../../src/avro/schema.ts';
import { type DataFile, readManifest, writeManifest } from '../../src/iceberg/manifest.ts';
import { type ManifestFile, readManifestList, writeManifestList } from '../../src/iceberg/manifest-list.ts';
import type { PartitionSpec } from '../../src/iceberg/metadata.ts';
import type { Schema } from '../../src/iceberg/schema.ts';
import { toBytes } from '../../src/iceberg/values.ts';
import { readWithAvsc } from '../support/avsc-reader.ts';

const schema: Schema = {
  type: 'struct',
  'schema-id': 0,
  fields: [
    { id: 1, name: 'id', required: true, type: 'long' },
    { id: 2, name: 'ts', required: true, type: 'timestamptz' },
    { id: 3, name: 'px', required: false, type: 'decimal(38, 8)' },
    { id: 4, name: 'u', required: false, type: 'uuid' },
  ],
};
const spec: PartitionSpec = {
  'spec-id': 0,
  fields: [
    { 'source-id': 2, 'field-id': 1000, name: 'ts_day', transform: 'day' },
    { 'source-id': 3, 'field-id': 1001, name: 'px', transform: 'identity' },
    { 'source-id': 4, 'field-id': 1002, name: 'u', transform: 'identity' },
  ],
};
const file: DataFile = {
  content: 0,
  file_path: 's3://b/w/t/data/a.parquet',
  file_format: 'PARQUET',
  partition: { ts_day: 19723, px: -123456789012345678901234567890n, u: null },
  record_count: 3,
  file_size_in_bytes: 1234,
  column_sizes: new Map([
    [1, 10],
    [2, 20],
  ]),
  value_counts: new Map([[1, 3]]),
  null_value_counts: new Map([[1, 0]]),
  lower_bounds: new Map([[1, toBytes('long', 9007199254740993n)]]),
  upper_bounds: new Map([[1, toBytes('long', 9007199254740999n)]]),
  split_offsets: [4],
};

async function avscRead(bytes: Uint8Array) {
  const { records, meta } = await readWithAvsc(bytes);
  return {
    records,
    header: meta,
    schema: JSON.parse(meta['avro.schema']?.toString() ?? '{}') as AvroSchema,
  };
}

/** Every field id in an Avro schema, by dotted field name. */
function fieldIds(s: AvroSchema, prefix = ''): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const walk = (t: AvroSchema, path: string) => {
    if (Array.isArray(t)) {
      for (const b of t) walk(b, path);
      return;
    }
    if (typeof t !== 'object') return;
    if (t.type === 'record')
      for (const f of t.fields as AvroField[]) {
        out[`${path}${f.name}`] = f['field-id'];
        walk(f.type, `${path}${f.name}.`);
      }
    if (t.type === 'array') {
      if ('element-id' in t) out[`${path}element`] = t['element-id'];
      walk(t.items as AvroSchema, path);
    }
  };
  walk(s, prefix);
  return out;
}

describe('manifests and manifest lists', () => {
  it('a manifest is a plain Avro file another reader decodes, with the spec field ids', async () => {
    const bytes = writeManifest({
      schema,
      spec,
      entries: [
        {
          status: 1,
          snapshot_id: 7234567890123456789n,
          sequence_number: null,
          file_sequence_number: null,
          data_file: file,
        },
      ],
    });
    const { records, header, schema: avroSchema } = await avscRead(bytes);
    expect(header['format-version']?.toString()).toBe('2');
    expect(JSON.parse(header['partition-spec']?.toString() ?? '')).toEqual(spec.fields);
    expect(JSON.parse(header.schema?.toString() ?? '')).toEqual(schema);
    expect(fieldIds(avroSchema)).toMatchObject({
      status: 0,
      snapshot_id: 1,
      sequence_number: 3,
      file_sequence_number: 4,
      data_file: 2,
      'data_file.content': 134,
      'data_file.file_path': 100,
      'data_file.partition': 102,
      'data_file.partition.ts_day': 1000,
      'data_file.partition.px': 1001,
      'data_file.record_count': 103,
      'data_file.column_sizes': 108,
      'data_file.column_sizes.key': 117,
      'data_file.column_sizes.value': 118,
      'data_file.lower_bounds.key': 126,
      'data_file.upper_bounds.value': 130,
      'data_file.split_offsets': 132,
      'data_file.split_offsets.element': 133,
    });
    const [entry] = records as Array<{
      snapshot_id: bigint;
      data_file: { record_count: bigint; partition: Record<string, unknown> };
    }>;
    expect(entry?.snapshot_id).toBe(7234567890123456789n);
    expect(entry?.data_file.record_count).toBe(3n);
    expect(entry?.data_file.partition.ts_day).toBe(19723);
  });

  it('round-trips through our reader, decimals and 64-bit values exact', () => {
    const bytes = writeManifest({
      schema,
      spec,
      entries: [
        {
          status: 1,
          snapshot_id: 7234567890123456789n,
          sequence_number: 5n,
          file_sequence_number: 5n,
          data_file: file,
        },
      ],
    });
    const [entry] = readManifest(bytes).entries;
    expect(entry).toEqual({
      status: 1,
      snapshot_id: 7234567890123456789n,
      sequence_number: 5n,
      file_sequence_number: 5n,
      data_file: file,
    });
  });

  it('manifest lists round-trip and carry v2 field ids', async () => {
    const manifest: ManifestFile = {
      manifest_path: 's3://b/w/t/metadata/m0.avro',
      manifest_length: 4096,
      partition_spec_id: 0,
      content: 0,
      sequence_number: 34n,
      min_sequence_number: 33n,
      added_snapshot_id: 9007199254740993n,
      added_files_count: 2,
      existing_files_count: 0,
      deleted_files_count: 0,
      added_rows_count: 15,
      existing_rows_count: 0,
      deleted_rows_count: 0,
      partitions: [
        {
          contains_null: false,
          contains_nan: false,
          lower_bound: toBytes('int', 1),
          upper_bound: toBytes('int', 2),
        },
      ],
    };
    const bytes = writeManifestList({
      snapshotId: 9007199254740993n,
      parentSnapshotId: undefined,
      sequenceNumber: 34n,
      manifests: [manifest],
    });
    expect(readManifestList(bytes)).toEqual([manifest]);
    const { header, schema: avroSchema } = await avscRead(bytes);
    expect(header['snapshot-id']?.toString()).toBe('9007199254740993');
    expect(header['parent-snapshot-id']?.toString()).toBe('null');
    expect(fieldIds(avroSchema)).toMatchObject({
      manifest_path: 500,
      manifest_length: 501,
      partition_spec_id: 502,
      content: 517,
      sequence_number: 515,
      min_sequence_number: 516,
      added_snapshot_id: 503,
      added_files_count: 504,
      partitions: 507,
      'partitions.element': 508,
      'partitions.contains_null': 509,
      'partitions.contains_nan': 518,
      'partitions.lower_bound': 510,
    });
  });

  it('reads manifest lists of writers that used the older *_data_files_count names', () => {
    const old: AvroSchema = {
      type: 'record',
      name: 'manifest_file',
      fields: [
        { name: 'manifest_path', type: 'string', 'field-id': 500 },
        { name: 'manifest_length', type: 'long', 'field-id': 501 },
        { name: 'partition_spec_id', type: 'int', 'field-id': 502 },
        { name: 'content', type: 'int', 'field-id': 517 },
        { name: 'sequence_number', type: 'long', 'field-id': 515 },
        { name: 'min_sequence_number', type: 'long', 'field-id': 516 },
        { name: 'added_snapshot_id', type: 'long', 'field-id': 503 },
        { name: 'added_data_files_count', type: 'int', 'field-id': 504 },
        { name: 'existing_data_files_count', type: 'int', 'field-id': 505 },
        { name: 'deleted_data_files_count', type: 'int', 'field-id': 506 },
        { name: 'added_rows_count', type: 'long', 'field-id': 512 },
        { name: 'existing_rows_count', type: 'long', 'field-id': 513 },
        { name: 'deleted_rows_count', type: 'long', 'field-id': 514 },
      ],
    };
    const bytes = writeContainer({
      schema: old,
      codec: 'null',
      records: [
        {
          manifest_path: 'm',
          manifest_length: 1,
          partition_spec_id: 0,
          content: 0,
          sequence_number: 1,
          min_sequence_number: 1,
          added_snapshot_id: 1,
          added_data_files_count: 3,
          existing_data_files_count: 4,
          deleted_data_files_count: 5,
          added_rows_count: 6,
          existing_rows_count: 7,
          deleted_rows_count: 8,
        },
      ],
    });
    expect(readManifestList(bytes)[0]).toMatchObject({
      added_files_count: 3,
      existing_files_count: 4,
      deleted_files_count: 5,
      partitions: null,
    });
  });

  it('names the file when a manifest is not Avro', () => {
    expect(() => readManifest(new Uint8Array([1, 2, 3]), 's3://b/m.avro')).toThrow(
      's3://b/m.avro: not an Avro object container file (bad magic)',
    );
  });
});
