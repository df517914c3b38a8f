import { readContainer, writeContainer } from '../avro/container.ts';
import type { AvroField, AvroSchema } from '../avro/schema.ts';
import { InvalidMetadataError } from '../errors.ts';
import { stringifyJson } from './json.ts';
import type { PartitionSpec } from './metadata.ts';
import { findField, isPrimitive, type Schema } from './schema.ts';
import { parseTransform, resultType } from './transforms.ts';
import { avroTypeOf, fromAvroValue, type IcebergValue, toAvroValue } from './values.ts';

/**
 * Manifests (format v2): Avro files of `manifest_entry` records, one per data file, with the field ids
 * of the table spec ("Manifests"). Member names are the spec's snake_case Avro field names.
 */
export type PartitionValues = Record<string, IcebergValue | null>;
export type DataFile = {
  content: 0;
  file_path: string;
  file_format: 'PARQUET' | 'AVRO' | 'ORC';
  partition: PartitionValues;
  record_count: number;
  file_size_in_bytes: number;
  column_sizes?: Map<number, number>;
  value_counts?: Map<number, number>;
  null_value_counts?: Map<number, number>;
  nan_value_counts?: Map<number, number>;
  lower_bounds?: Map<number, Uint8Array>;
  upper_bounds?: Map<number, Uint8Array>;
  split_offsets?: number[];
  sort_order_id?: number;
};
export const ENTRY_STATUS = { existing: 0, added: 1, deleted: 2 } as const;
export type ManifestEntry = {
  status: 0 | 1 | 2;
  /** Null on added entries means "inherited from the manifest list" (spec: first-row inheritance). */
  snapshot_id: bigint | null;
  sequence_number: bigint | null;
  file_sequence_number: bigint | null;
  data_file: DataFile;
};

const optional = (name: string, id: number, type: AvroSchema): AvroField => ({
  name,
  type: ['null', type],
  default: null,
  'field-id': id,
});
const required = (name: string, id: number, type: AvroSchema): AvroField => ({ name, type, 'field-id': id });
const intMap = (keyId: number, valueId: number, value: 'long' | 'bytes'): AvroSchema => ({
  type: 'array',
  logicalType: 'map',
  items: {
    type: 'record',
    name: `k${keyId}_v${valueId}`,
    fields: [required('key', keyId, 'int'), required('value', valueId, value)],
  },
});

/** The partition tuple's Avro record: one optional field per partition field, typed by its transform. */
export function partitionType(
  spec: PartitionSpec,
  schema: Schema,
): Array<{ name: string; id: number; type: string }> {
  return spec.fields.map((f) => {
    const source = findField(schema, f['source-id'])?.field.type;
    if (source === undefined || !isPrimitive(source))
      throw new InvalidMetadataError(
        `partition field ${f.name}: source-id ${f['source-id']} is not a primitive column`,
      );
    return { name: f.name, id: f['field-id'], type: resultType(parseTransform(f.transform), source) };
  });
}

export function manifestEntrySchema(
  partition: Array<{ name: string; id: number; type: string }>,
): AvroSchema {
  return {
    type: 'record',
    name: 'manifest_entry',
    fields: [
      required('status', 0, 'int'),
      optional('snapshot_id', 1, 'long'),
      optional('sequence_number', 3, 'long'),
      optional('file_sequence_number', 4, 'long'),
      required('data_file', 2, {
        type: 'record',
        name: 'r2',
        fields: [
          required('content', 134, 'int'),
          required('file_path', 100, 'string'),
          required('file_format', 101, 'string'),
          required('partition', 102, {
            type: 'record',
            name: 'r102',
            fields: partition.map((p) => optional(p.name, p.id, avroTypeOf(p.type, String(p.id)))),
          }),
          required('record_count', 103, 'long'),
          required('file_size_in_bytes', 104, 'long'),
          optional('column_sizes', 108, intMap(117, 118, 'long')),
          optional('value_counts', 109, intMap(119, 120, 'long')),
          optional('null_value_counts', 110, intMap(121, 122, 'long')),
          optional('nan_value_counts', 137, intMap(138, 139, 'long')),
          optional('lower_bounds', 125, intMap(126, 127, 'bytes')),
          optional('upper_bounds', 128, intMap(129, 130, 'bytes')),
          optional('key_metadata', 131, 'bytes'),
          optional('split_offsets', 132, { type: 'array', items: 'long', 'element-id': 133 }),
          optional('equality_ids', 135, { type: 'array', items: 'int', 'element-id': 136 }),
          optional('sort_order_id', 140, 'int'),
        ],
      }),
    ],
  };
}

const mapOut = <V>(m: Map<number, V> | undefined) =>
  m ? [...m].sort(([a], [b]) => a - b).map(([key, value]) => ({ key, value })) : null;
const mapIn = <V>(v: unknown, convert: (x: unknown) => V) =>
  Array.isArray(v)
    ? new Map((v as Array<{ key: number; value: unknown }>).map((e) => [e.key, convert(e.value)]))
    : undefined;

export type ManifestWriteInput = {
  schema: Schema;
  spec: PartitionSpec;
  entries: ManifestEntry[];
};

export function writeManifest({ schema, spec, entries }: ManifestWriteInput): Uint8Array {
  const partition = partitionType(spec, schema);
  return writeContainer({
    schema: manifestEntrySchema(partition),
    codec: 'deflate',
    metadata: {
      schema: stringifyJson(schema),
      'schema-id': String(schema['schema-id']),
      'partition-spec': stringifyJson(spec.fields),
      'partition-spec-id': String(spec['spec-id']),
      'format-version': '2',
      content: 'data',
    },
    records: entries.map((e) => {
      const f = e.data_file;
      return {
        status: e.status,
        snapshot_id: e.snapshot_id,
        sequence_number: e.sequence_number,
        file_sequence_number: e.file_sequence_number,
        data_file: {
          content: f.content,
          file_path: f.file_path,
          file_format: f.file_format,
          partition: Object.fromEntries(
            partition.map((p) => [p.name, toAvroValue(p.type, f.partition[p.name] ?? null)]),
          ),
          record_count: f.record_count,
          file_size_in_bytes: f.file_size_in_bytes,
          column_sizes: mapOut(f.column_sizes),
          value_counts: mapOut(f.value_counts),
          null_value_counts: mapOut(f.null_value_counts),
          nan_value_counts: mapOut(f.nan_value_counts),
          lower_bounds: mapOut(f.lower_bounds),
          upper_bounds: mapOut(f.upper_bounds),
          key_metadata: null,
          split_offsets: f.split_offsets ?? null,
          equality_ids: null,
          sort_order_id: f.sort_order_id ?? null,
        },
      };
    }),
  });
}

export type Manifest = { metadata: Record<string, string>; entries: ManifestEntry[] };

/**
 * Reads a manifest written by any v2 writer. Partition values are typed by the spec in the file's own
 * header, so manifests of older partition specs read correctly.
 */
export function readManifest(bytes: Uint8Array, source = 'manifest'): Manifest {
  let file: ReturnType<typeof readContainer>;
  try {
    file = readContainer(bytes);
  } catch (error) {
    throw new InvalidMetadataError(`${source}: ${(error as Error).message}`, { source });
  }
  // The partition record's Avro schema carries each field's logical type; recover Iceberg types from it.
  const entrySchema = file.schema as { fields: AvroField[] };
  const dataFile = entrySchema.fields.find((f) => f.name === 'data_file')?.type as { fields: AvroField[] };
  const partitionFields = (
    dataFile?.fields.find((f) => f.name === 'partition')?.type as { fields: AvroField[] }
  )?.fields;
  const typeOf = (f: AvroField): string => {
    const t = Array.isArray(f.type) ? f.type.find((b) => b !== 'null') : f.type;
    if (typeof t === 'string') return t === 'bytes' ? 'binary' : t;
    const o = t as { type: string; logicalType?: string; precision?: number; scale?: number; size?: number };
    if (o.logicalType === 'decimal') return `decimal(${o.precision}, ${o.scale})`;
    if (o.logicalType === 'uuid') return 'uuid';
    if (o.logicalType === 'date') return 'date';
    if (o.type === 'fixed') return `fixed[${o.size}]`;
    return o.type === 'bytes' ? 'binary' : o.type;
  };
  const types = new Map((partitionFields ?? []).map((f) => [f.name, typeOf(f)]));
  const entries = file.records.map((r) => {
    const e = r as Record<string, unknown> & { data_file: Record<string, unknown> };
    const d = e.data_file;
    const partition: PartitionValues = {};
    for (const [k, v] of Object.entries((d.partition ?? {}) as Record<string, unknown>))
      partition[k] = fromAvroValue(types.get(k) ?? 'binary', v);
    const num = (x: unknown) => Number(x);
    const dataFileOut: DataFile = {
      content: Number(d.content ?? 0) as 0,
      file_path: d.file_path as string,
      file_format: d.file_format as DataFile['file_format'],
      partition,
      record_count: num(d.record_count),
      file_size_in_bytes: num(d.file_size_in_bytes),
    };
    const counts = ['column_sizes', 'value_counts', 'null_value_counts', 'nan_value_counts'] as const;
    for (const k of counts) {
      const m = mapIn(d[k], num);
      if (m) dataFileOut[k] = m;
    }
    for (const k of ['lower_bounds', 'upper_bounds'] as const) {
      const m = mapIn(d[k], (x) => x as Uint8Array);
      if (m) dataFileOut[k] = m;
    }
    if (Array.isArray(d.split_offsets)) dataFileOut.split_offsets = d.split_offsets.map(num);
    if (d.sort_order_id !== null && d.sort_order_id !== undefined)
      dataFileOut.sort_order_id = num(d.sort_order_id);
    return {
      status: Number(e.status) as 0 | 1 | 2,
      snapshot_id: (e.snapshot_id ?? null) as bigint | null,
      sequence_number: (e.sequence_number ?? null) as bigint | null,
      file_sequence_number: (e.file_sequence_number ?? null) as bigint | null,
      data_file: dataFileOut,
    };
  });
  return { metadata: file.metadata, entries };
}
