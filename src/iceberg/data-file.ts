import type { SchemaElement } from 'hyparquet';
import { parquetRead } from 'hyparquet';
import { InputError } from '../errors.ts';
import type { DataFile, PartitionValues } from './manifest.ts';
import type { PartitionSpec } from './metadata.ts';
import type { ObjectStore } from './object-store.ts';
import { type LeafColumn, resolveColumns } from './parquet-columns.ts';
import { objectStoreBuffer, type ParquetFooter, readParquetFooter } from './parquet-footer.ts';
import type { MappedField, Schema } from './schema.ts';
import { applyTransform, isMonotonic, parseTransform } from './transforms.ts';
import { bytesToBigint, compareValues, decimalOf, type IcebergValue, toBytes } from './values.ts';

/** Bounds of strings and binaries keep this many characters/bytes, as Iceberg's default `truncate(16)`. */
export const BOUND_LENGTH = 16;

type ColumnSummary = {
  leaf: LeafColumn;
  nullCount?: number;
  valueCount: number;
  min?: IcebergValue;
  max?: IcebergValue;
};

/** A Parquet statistic as an Iceberg value of the column's type; undefined when it cannot be trusted. */
function statValue(bytes: Uint8Array, e: SchemaElement, type: string): IcebergValue | undefined {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (decimalOf(type)) {
    if (e.type === 'INT32') return BigInt(v.getInt32(0, true));
    if (e.type === 'INT64') return v.getBigInt64(0, true);
    return bytesToBigint(bytes);
  }
  switch (type) {
    case 'boolean':
      return bytes[0] !== 0;
    case 'int':
    case 'date':
      return v.getInt32(0, true);
    case 'long':
      return e.type === 'INT32' ? BigInt(v.getInt32(0, true)) : v.getBigInt64(0, true);
    case 'float':
      return Number.isNaN(v.getFloat32(0, true)) ? undefined : v.getFloat32(0, true);
    case 'double': {
      const d = e.type === 'FLOAT' ? v.getFloat32(0, true) : v.getFloat64(0, true);
      return Number.isNaN(d) ? undefined : d;
    }
    case 'timestamp':
    case 'timestamptz':
    case 'timestamp_ns':
    case 'timestamptz_ns':
      return v.getBigInt64(0, true);
    case 'string':
      try {
        return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
      } catch {
        return undefined;
      }
    default:
      // uuid, fixed, binary: bytes as they are.
      return bytes.slice();
  }
}

/** Serialized bounds, strings and binaries cut to BOUND_LENGTH (the upper one rounded up). */
function boundBytes(type: string, value: IcebergValue, upper: boolean): Uint8Array | undefined {
  if (type === 'string') {
    const chars = Array.from(value as string);
    if (chars.length <= BOUND_LENGTH) return toBytes(type, value);
    const cut = chars.slice(0, BOUND_LENGTH);
    if (!upper) return toBytes(type, cut.join(''));
    for (let i = cut.length - 1; i >= 0; i--) {
      const cp = (cut[i] as string).codePointAt(0) as number;
      const next = cp + 1 === 0xd800 ? 0xe000 : cp + 1;
      if (next <= 0x10ffff) return toBytes(type, [...cut.slice(0, i), String.fromCodePoint(next)].join(''));
    }
    return undefined;
  }
  if (type === 'binary') {
    const b = value as Uint8Array;
    if (b.length <= BOUND_LENGTH) return b;
    const cut = b.slice(0, BOUND_LENGTH);
    if (!upper) return cut;
    for (let i = cut.length - 1; i >= 0; i--)
      if ((cut[i] as number) < 0xff) return new Uint8Array([...cut.subarray(0, i), (cut[i] as number) + 1]);
    return undefined;
  }
  return toBytes(type, value);
}

function summarize(footer: ParquetFooter, leaf: LeafColumn): ColumnSummary {
  const s: ColumnSummary = { leaf, valueCount: 0, nullCount: 0 };
  let boundsKnown = !leaf.repeated;
  const binary = ['BYTE_ARRAY', 'FIXED_LEN_BYTE_ARRAY'].includes(leaf.element.type ?? '');
  footer.metadata.row_groups.forEach((rg, g) => {
    const meta = rg.columns[leaf.index]?.meta_data;
    if (!meta || rg.num_rows === 0n) return;
    s.valueCount += Number(meta.num_values);
    const stats = footer.stats[g]?.[leaf.index];
    if (stats?.nullCount !== undefined && s.nullCount !== undefined) s.nullCount += Number(stats.nullCount);
    else if (!leaf.required) s.nullCount = undefined;
    const allNull = stats?.nullCount !== undefined && Number(stats.nullCount) === Number(meta.num_values);
    if (allNull) return;
    if (!stats?.min || !stats.max || (stats.legacy && binary)) {
      boundsKnown = false;
      return;
    }
    const lo = statValue(stats.min, leaf.element, leaf.type);
    const hi = statValue(stats.max, leaf.element, leaf.type);
    if (lo === undefined || hi === undefined) boundsKnown = false;
    else {
      if (s.min === undefined || compareValues(leaf.type, lo, s.min) < 0) s.min = lo;
      if (s.max === undefined || compareValues(leaf.type, hi, s.max) > 0) s.max = hi;
    }
  });
  if (!boundsKnown) {
    s.min = undefined;
    s.max = undefined;
  }
  return s;
}

/** Raw values of one top-level column, decimals as unscaled bigint and timestamps as integers. */
async function columnValues(
  store: ObjectStore,
  footer: ParquetFooter,
  leaf: LeafColumn,
): Promise<IcebergValue[]> {
  // hyparquet turns decimals into floats: strip the annotation so the unscaled integers come through.
  const schema = footer.metadata.schema.map((e) =>
    e === leaf.element && decimalOf(leaf.type)
      ? { ...e, converted_type: undefined, logical_type: undefined }
      : e,
  );
  const values: IcebergValue[] = [];
  await parquetRead({
    file: objectStoreBuffer(store, footer.uri, footer.size),
    metadata: { ...footer.metadata, schema },
    columns: [leaf.topName],
    parsers: {
      timestampFromMicroseconds: (v: bigint) => v,
      timestampFromNanoseconds: (v: bigint) => v,
      timestampFromMilliseconds: (v: bigint) => v * 1000n,
      dateFromDays: (d: number) => d,
      uuidFromBytes: (b: Uint8Array) => b,
    },
    onComplete: (rows: unknown[][]) => {
      for (const row of rows) {
        const v = row[0];
        if (v === null || v === undefined) values.push(null as unknown as IcebergValue);
        else if (decimalOf(leaf.type))
          values.push(v instanceof Uint8Array ? bytesToBigint(v) : BigInt(v as number));
        else if (leaf.type === 'long' && typeof v === 'number') values.push(BigInt(v));
        else values.push(v as IcebergValue);
      }
    },
  });
  return values;
}

const show = (v: IcebergValue | null) =>
  v === null ? 'null' : v instanceof Uint8Array ? Buffer.from(v).toString('hex') : String(v);

async function partitionOf(
  store: ObjectStore,
  footer: ParquetFooter,
  spec: PartitionSpec,
  summaries: Map<number, ColumnSummary>,
): Promise<PartitionValues> {
  const out: PartitionValues = {};
  for (const field of spec.fields) {
    const t = parseTransform(field.transform);
    const s = summaries.get(field['source-id']);
    if (!s || s.leaf.repeated)
      throw new InputError(`data file ${footer.uri} has no column for partition field ${field.name}`, {
        uri: footer.uri,
      });
    const type = s.leaf.type;
    const spanning = (a: IcebergValue | null, b: IcebergValue | null): never => {
      throw new InputError(
        `data file ${footer.uri} holds rows of more than one partition: ${field.name} is ${show(a)} and ${show(b)}; stage one file per partition`,
        { uri: footer.uri, field: field.name },
      );
    };
    if (t.kind === 'void' || (s.nullCount !== undefined && s.nullCount === s.valueCount)) {
      out[field.name] = null;
      continue;
    }
    if (isMonotonic(t) && s.nullCount === 0 && s.min !== undefined && s.max !== undefined) {
      const lo = applyTransform(t, type, s.min);
      const hi = applyTransform(t, type, s.max);
      if (lo !== null && hi !== null && compareValues(type, lo, hi) === 0) {
        out[field.name] = lo;
        continue;
      }
    }
    // Bounds cannot settle it (bucket, nulls, inexact statistics): look at every row.
    const values = await columnValues(store, footer, s.leaf);
    if (values.length === 0) {
      out[field.name] = null;
      continue;
    }
    const first = applyTransform(t, type, values[0] ?? null);
    for (const v of values) {
      const p = applyTransform(t, type, v ?? null);
      if (
        (p === null) !== (first === null) ||
        (p !== null && compareValues(type, p, first as IcebergValue) !== 0)
      )
        spanning(first, p);
    }
    out[field.name] = first;
  }
  return out;
}

export type DataFileInput = {
  store: ObjectStore;
  uri: string;
  schema: Schema;
  spec: PartitionSpec;
  mapping: MappedField[];
};

/** A manifest's `data_file` for one staged Parquet file: counts, sizes, bounds and partition values. */
export async function dataFileFromParquet(input: DataFileInput): Promise<DataFile> {
  const footer = await readParquetFooter(input.store, input.uri);
  const leaves = resolveColumns(footer.metadata, input.schema, input.mapping, input.uri);
  const summaries = new Map(leaves.map((l) => [l.fieldId, summarize(footer, l)]));
  const file: DataFile = {
    content: 0,
    file_path: input.uri,
    file_format: 'PARQUET',
    partition: await partitionOf(input.store, footer, input.spec, summaries),
    record_count: Number(footer.metadata.num_rows),
    file_size_in_bytes: footer.size,
    column_sizes: new Map(),
    value_counts: new Map(),
    null_value_counts: new Map(),
    lower_bounds: new Map(),
    upper_bounds: new Map(),
  };
  for (const [id, s] of summaries) {
    const size = footer.metadata.row_groups.reduce(
      (n, rg) => n + Number(rg.columns[s.leaf.index]?.meta_data?.total_compressed_size ?? 0),
      0,
    );
    file.column_sizes?.set(id, size);
    file.value_counts?.set(id, s.valueCount);
    if (s.nullCount !== undefined) file.null_value_counts?.set(id, s.nullCount);
    if (s.min !== undefined && s.max !== undefined) {
      const lo = boundBytes(s.leaf.type, s.min, false);
      const hi = boundBytes(s.leaf.type, s.max, true);
      if (lo) file.lower_bounds?.set(id, lo);
      if (hi) file.upper_bounds?.set(id, hi);
    }
  }
  const offsets = footer.metadata.row_groups
    .map(
      (rg) =>
        rg.file_offset ??
        rg.columns[0]?.meta_data?.dictionary_page_offset ??
        rg.columns[0]?.meta_data?.data_page_offset,
    )
    .filter((o): o is bigint => o !== undefined)
    .map(Number);
  if (offsets.length > 0) file.split_offsets = offsets;
  return file;
}
