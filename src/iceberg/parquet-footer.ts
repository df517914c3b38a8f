import type { AsyncBuffer, FileMetaData } from 'hyparquet';
import { parquetMetadata } from 'hyparquet';
import { deserializeTCompactProtocol } from 'hyparquet/src/thrift.js';
import { InputError } from '../errors.ts';
import type { ObjectStore } from './object-store.ts';

/**
 * A Parquet footer read through an object store with ranged reads (two requests at most, the data
 * pages are never fetched). hyparquet decodes the structure; the raw statistics bytes come straight
 * from the Thrift footer because hyparquet turns decimal bounds into floating point.
 */
export type RawStats = {
  min?: Uint8Array;
  max?: Uint8Array;
  nullCount?: bigint;
  /**
   * min/max come from the deprecated fields, whose order is signed bytes for binary columns:
   * trustworthy for numeric columns only.
   */
  legacy: boolean;
};
export type ParquetFooter = {
  uri: string;
  size: number;
  metadata: FileMetaData;
  /** Raw statistics, indexed [row group][column chunk]. */
  stats: Array<Array<RawStats | undefined>>;
};

const TAIL = 64 * 1024;

/** hyparquet's AsyncBuffer over an object store, for reading column data when a footer is not enough. */
export function objectStoreBuffer(store: ObjectStore, uri: string, size: number): AsyncBuffer {
  return {
    byteLength: size,
    async slice(start: number, end = size) {
      const bytes = await store.getRange(uri, start, end);
      return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
    },
  };
}

export async function readParquetFooter(store: ObjectStore, uri: string): Promise<ParquetFooter> {
  const info = await store.head(uri);
  if (!info) throw new InputError(`data file ${uri} does not exist; stage the batch again`, { uri });
  const size = info.size;
  const bad = (why: string): never => {
    throw new InputError(`data file ${uri} is not a Parquet file: ${why}`, { uri, size });
  };
  if (size < 12) bad(`only ${size} bytes`);
  let tail = await store.getRange(uri, Math.max(0, size - TAIL), size);
  const view = new DataView(tail.buffer, tail.byteOffset, tail.byteLength);
  if (view.getUint32(tail.length - 4, true) !== 0x31524150) bad('no PAR1 magic at the end');
  const footerLength = view.getUint32(tail.length - 8, true);
  if (footerLength + 8 > size) bad(`footer length ${footerLength} exceeds the file size`);
  if (footerLength + 8 > tail.length) tail = await store.getRange(uri, size - footerLength - 8, size);
  const footer = tail.subarray(tail.length - footerLength - 8);
  let metadata: FileMetaData;
  let raw: { [key: `field_${number}`]: unknown };
  try {
    metadata = parquetMetadata(footer);
    raw = deserializeTCompactProtocol({
      view: new DataView(footer.buffer, footer.byteOffset, footer.byteLength),
      offset: 0,
    });
  } catch (error) {
    return bad((error as Error).message);
  }
  type RawChunk = { field_3?: { field_12?: Record<string, unknown> } };
  const rowGroups = (raw.field_4 ?? []) as Array<{ field_1: RawChunk[] }>;
  const stats = rowGroups.map((rg) =>
    rg.field_1.map((chunk) => {
      const s = chunk.field_3?.field_12;
      if (!s) return undefined;
      const out: RawStats = { legacy: s.field_6 === undefined && s.field_5 === undefined };
      // Statistics field ids: 1 max (legacy), 2 min (legacy), 3 null_count, 5 max_value, 6 min_value.
      const min = (s.field_6 ?? s.field_2) as Uint8Array | undefined;
      const max = (s.field_5 ?? s.field_1) as Uint8Array | undefined;
      if (s.field_6 !== undefined || s.field_2 !== undefined) out.min = min;
      if (s.field_5 !== undefined || s.field_1 !== undefined) out.max = max;
      if (s.field_3 !== undefined) out.nullCount = BigInt(s.field_3 as bigint | number);
      return out;
    }),
  );
  return { uri, size, metadata, stats };
}
