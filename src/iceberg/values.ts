import type { AvroSchema } from '../avro/schema.ts';

/**
 * Iceberg values in memory, by type: boolean -> boolean; int, date -> number (date in days);
 * long, time, timestamp(tz) -> bigint (µs, ns for the _ns types); float, double -> number;
 * decimal -> bigint unscaled; string -> string; uuid, fixed, binary -> Uint8Array.
 */
export type IcebergValue = boolean | number | bigint | string | Uint8Array;

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder('utf-8', { fatal: true });

export const decimalOf = (type: string) => {
  const m = /^decimal\((\d+), ?(\d+)\)$/.exec(type);
  return m ? { precision: Number(m[1]), scale: Number(m[2]) } : undefined;
};
const fixedLength = (type: string) => {
  const m = /^fixed\[(\d+)\]$/.exec(type);
  return m ? Number(m[1]) : undefined;
};
const LONG_TYPES = new Set(['long', 'time', 'timestamp', 'timestamptz', 'timestamp_ns', 'timestamptz_ns']);

export const isLongType = (type: string) => LONG_TYPES.has(type);

/** Two's complement big-endian in exactly `size` bytes. */
export function bigintToBytes(value: bigint, size: number): Uint8Array {
  const out = new Uint8Array(size);
  let v = BigInt.asUintN(size * 8, value);
  for (let i = size - 1; i >= 0; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

export function bytesToBigint(bytes: Uint8Array): bigint {
  let v = 0n;
  for (const b of bytes) v = (v << 8n) | BigInt(b);
  return bytes.length === 0 ? 0n : BigInt.asIntN(bytes.length * 8, v);
}

/** The fewest bytes that hold `value` in two's complement, as Java's BigInteger.toByteArray does. */
export function minimalBytes(value: bigint): Uint8Array {
  let size = 1;
  while (BigInt.asIntN(size * 8, value) !== value) size++;
  return bigintToBytes(value, size);
}

/** Bytes a decimal of this precision needs (Iceberg's Avro mapping: fixed of the minimum size). */
export function decimalBytes(precision: number): number {
  let size = 1;
  while (2n ** BigInt(8 * size - 1) <= 10n ** BigInt(precision)) size++;
  return size;
}

/** Single-value serialization (table spec, Appendix D), used for bounds and partition summaries. */
export function toBytes(type: string, value: IcebergValue): Uint8Array {
  const view = (n: number) => {
    const b = new Uint8Array(n);
    return { b, v: new DataView(b.buffer) };
  };
  if (type === 'boolean') return new Uint8Array([value ? 1 : 0]);
  if (type === 'int' || type === 'date') {
    const { b, v } = view(4);
    v.setInt32(0, value as number, true);
    return b;
  }
  if (isLongType(type)) {
    const { b, v } = view(8);
    v.setBigInt64(0, BigInt(value as bigint), true);
    return b;
  }
  if (type === 'float') {
    const { b, v } = view(4);
    v.setFloat32(0, value as number, true);
    return b;
  }
  if (type === 'double') {
    const { b, v } = view(8);
    v.setFloat64(0, value as number, true);
    return b;
  }
  if (type === 'string') return utf8.encode(value as string);
  if (decimalOf(type)) return minimalBytes(value as bigint);
  if (type === 'uuid' || type === 'binary' || fixedLength(type) !== undefined) return value as Uint8Array;
  throw new TypeError(`no single-value serialization for type ${type}`);
}

export function fromBytes(type: string, bytes: Uint8Array): IcebergValue {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (type === 'boolean') return bytes[0] !== 0;
  if (type === 'int' || type === 'date') return v.getInt32(0, true);
  if (isLongType(type)) return v.getBigInt64(0, true);
  if (type === 'float') return v.getFloat32(0, true);
  if (type === 'double') return v.getFloat64(0, true);
  if (type === 'string') return fromUtf8.decode(bytes);
  if (decimalOf(type)) return bytesToBigint(bytes);
  if (type === 'uuid' || type === 'binary' || fixedLength(type) !== undefined) return bytes.slice();
  throw new TypeError(`no single-value serialization for type ${type}`);
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return (a[i] as number) - (b[i] as number);
  return a.length - b.length;
}

/** Iceberg's sort order for a type: strings by UTF-8 bytes (code points), binary unsigned. */
export function compareValues(type: string, a: IcebergValue, b: IcebergValue): number {
  if (typeof a === 'bigint' || typeof b === 'bigint') {
    const x = BigInt(a as bigint);
    const y = BigInt(b as bigint);
    return x < y ? -1 : x > y ? 1 : 0;
  }
  if (typeof a === 'number' && typeof b === 'number') return a < b ? -1 : a > b ? 1 : 0;
  if (typeof a === 'boolean') return Number(a) - Number(b);
  if (type === 'string') return compareBytes(utf8.encode(a as string), utf8.encode(b as string));
  return compareBytes(a as Uint8Array, b as Uint8Array);
}

/** The Avro schema Iceberg uses for a primitive (spec, Appendix A). `name` keeps fixed names unique. */
export function avroTypeOf(type: string, name: string): AvroSchema {
  const dec = decimalOf(type);
  if (dec)
    return {
      type: 'fixed',
      name: `decimal_${name}`,
      size: decimalBytes(dec.precision),
      logicalType: 'decimal',
      precision: dec.precision,
      scale: dec.scale,
    };
  const len = fixedLength(type);
  if (len !== undefined) return { type: 'fixed', name: `fixed_${name}`, size: len };
  switch (type) {
    case 'boolean':
    case 'int':
    case 'long':
    case 'float':
    case 'double':
    case 'string':
      return type;
    case 'binary':
      return 'bytes';
    case 'date':
      return { type: 'int', logicalType: 'date' };
    case 'time':
      return { type: 'long', logicalType: 'time-micros' };
    case 'timestamp':
      return { type: 'long', logicalType: 'timestamp-micros', 'adjust-to-utc': false };
    case 'timestamptz':
      return { type: 'long', logicalType: 'timestamp-micros', 'adjust-to-utc': true };
    case 'timestamp_ns':
      return { type: 'long', logicalType: 'timestamp-nanos', 'adjust-to-utc': false };
    case 'timestamptz_ns':
      return { type: 'long', logicalType: 'timestamp-nanos', 'adjust-to-utc': true };
    case 'uuid':
      return { type: 'fixed', name: `uuid_${name}`, size: 16, logicalType: 'uuid' };
    default:
      throw new TypeError(`no Avro mapping for Iceberg type ${type}`);
  }
}

/** A value as our Avro encoder takes it for `avroTypeOf(type)`. */
export function toAvroValue(type: string, value: IcebergValue | null): unknown {
  if (value === null) return null;
  const dec = decimalOf(type);
  if (dec) return bigintToBytes(value as bigint, decimalBytes(dec.precision));
  return value;
}

export function fromAvroValue(type: string, value: unknown): IcebergValue | null {
  if (value === null || value === undefined) return null;
  if (decimalOf(type)) return bytesToBigint(value as Uint8Array);
  if (type === 'int' || type === 'date') return Number(value);
  return value as IcebergValue;
}
