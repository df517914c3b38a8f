import { readContainer, writeContainer } from '../avro/container.ts';
import type { AvroField, AvroSchema } from '../avro/schema.ts';
import { InvalidMetadataError } from '../errors.ts';
import type { ManifestEntry } from './manifest.ts';
import { compareValues, type IcebergValue, toBytes } from './values.ts';

/** One manifest list entry (`manifest_file`, format v2), with the spec's field names. */
export type FieldSummary = {
  contains_null: boolean;
  contains_nan: boolean | null;
  lower_bound: Uint8Array | null;
  upper_bound: Uint8Array | null;
};
export type ManifestFile = {
  manifest_path: string;
  manifest_length: number;
  partition_spec_id: number;
  content: 0 | 1;
  sequence_number: bigint;
  min_sequence_number: bigint;
  added_snapshot_id: bigint;
  added_files_count: number;
  existing_files_count: number;
  deleted_files_count: number;
  added_rows_count: number;
  existing_rows_count: number;
  deleted_rows_count: number;
  partitions: FieldSummary[] | null;
};

const field = (name: string, id: number, type: AvroSchema, optional = false): AvroField =>
  optional ? { name, type: ['null', type], default: null, 'field-id': id } : { name, type, 'field-id': id };

export const MANIFEST_FILE_SCHEMA: AvroSchema = {
  type: 'record',
  name: 'manifest_file',
  fields: [
    field('manifest_path', 500, 'string'),
    field('manifest_length', 501, 'long'),
    field('partition_spec_id', 502, 'int'),
    field('content', 517, 'int'),
    field('sequence_number', 515, 'long'),
    field('min_sequence_number', 516, 'long'),
    field('added_snapshot_id', 503, 'long'),
    field('added_files_count', 504, 'int'),
    field('existing_files_count', 505, 'int'),
    field('deleted_files_count', 506, 'int'),
    field('added_rows_count', 512, 'long'),
    field('existing_rows_count', 513, 'long'),
    field('deleted_rows_count', 514, 'long'),
    field(
      'partitions',
      507,
      {
        type: 'array',
        'element-id': 508,
        items: {
          type: 'record',
          name: 'r508',
          fields: [
            field('contains_null', 509, 'boolean'),
            field('contains_nan', 518, 'boolean', true),
            field('lower_bound', 510, 'bytes', true),
            field('upper_bound', 511, 'bytes', true),
          ],
        },
      },
      true,
    ),
    field('key_metadata', 519, 'bytes', true),
  ],
};

/** Per partition field: nulls seen and the lowest and highest values, serialized as single values. */
export function summarizePartitions(
  partition: Array<{ name: string; type: string }>,
  entries: ManifestEntry[],
): FieldSummary[] {
  return partition.map((p) => {
    let containsNull = false;
    let containsNan = false;
    let low: IcebergValue | undefined;
    let high: IcebergValue | undefined;
    for (const e of entries) {
      const v = e.data_file.partition[p.name] ?? null;
      if (v === null) containsNull = true;
      else if (typeof v === 'number' && Number.isNaN(v)) containsNan = true;
      else {
        if (low === undefined || compareValues(p.type, v, low) < 0) low = v;
        if (high === undefined || compareValues(p.type, v, high) > 0) high = v;
      }
    }
    return {
      contains_null: containsNull,
      contains_nan: containsNan,
      lower_bound: low === undefined ? null : toBytes(p.type, low),
      upper_bound: high === undefined ? null : toBytes(p.type, high),
    };
  });
}

export type ManifestListWriteInput = {
  snapshotId: bigint;
  parentSnapshotId: bigint | undefined;
  sequenceNumber: bigint;
  manifests: ManifestFile[];
};

export function writeManifestList(input: ManifestListWriteInput): Uint8Array {
  return writeContainer({
    schema: MANIFEST_FILE_SCHEMA,
    codec: 'deflate',
    metadata: {
      'snapshot-id': String(input.snapshotId),
      'parent-snapshot-id': input.parentSnapshotId === undefined ? 'null' : String(input.parentSnapshotId),
      'sequence-number': String(input.sequenceNumber),
      'format-version': '2',
    },
    records: input.manifests.map((m) => ({ ...m, key_metadata: null })),
  });
}

/** Reads a v2 manifest list (ours or another writer's); v1 lists lack sequence numbers and are refused. */
export function readManifestList(bytes: Uint8Array, source = 'manifest list'): ManifestFile[] {
  let records: unknown[];
  try {
    records = readContainer(bytes).records;
  } catch (error) {
    throw new InvalidMetadataError(`${source}: ${(error as Error).message}`, { source });
  }
  return records.map((r, i) => {
    const m = r as Record<string, unknown>;
    const long = (k: string, fallback?: string): bigint => {
      const v = m[k] ?? (fallback ? m[fallback] : undefined);
      if (typeof v !== 'bigint')
        throw new InvalidMetadataError(`${source}: entry ${i} has no ${k}`, { source });
      return v;
    };
    // Older writers used added_data_files_count etc.; the values mean the same.
    const count = (k: string) => Number(m[`${k}_files_count`] ?? m[`${k}_data_files_count`] ?? 0);
    return {
      manifest_path: m.manifest_path as string,
      manifest_length: Number(long('manifest_length')),
      partition_spec_id: Number(m.partition_spec_id),
      content: Number(m.content ?? 0) as 0 | 1,
      sequence_number: long('sequence_number'),
      min_sequence_number: long('min_sequence_number'),
      added_snapshot_id: long('added_snapshot_id'),
      added_files_count: count('added'),
      existing_files_count: count('existing'),
      deleted_files_count: count('deleted'),
      added_rows_count: Number(m.added_rows_count ?? 0),
      existing_rows_count: Number(m.existing_rows_count ?? 0),
      deleted_rows_count: Number(m.deleted_rows_count ?? 0),
      partitions: (m.partitions as FieldSummary[] | null) ?? null,
    };
  });
}
