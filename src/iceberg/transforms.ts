import { decimalOf, type IcebergValue, isLongType, minimalBytes, toBytes } from './values.ts';

/** Partition transforms (table spec, "Partition Transforms"), applied to values of `values.ts`. */
export type Transform =
  | { kind: 'identity' | 'year' | 'month' | 'day' | 'hour' | 'void' }
  | { kind: 'bucket' | 'truncate'; width: number };

export function parseTransform(text: string): Transform {
  const simple = ['identity', 'year', 'month', 'day', 'hour', 'void'] as const;
  const found = simple.find((s) => s === text);
  if (found) return { kind: found };
  const m = /^(bucket|truncate)\[([1-9][0-9]*)\]$/.exec(text);
  if (m) return { kind: m[1] as 'bucket' | 'truncate', width: Number(m[2]) };
  throw new TypeError(`unknown partition transform ${JSON.stringify(text)}`);
}

export const transformString = (t: Transform) => ('width' in t ? `${t.kind}[${t.width}]` : t.kind);

const TIME_SOURCES = new Set(['timestamp', 'timestamptz', 'timestamp_ns', 'timestamptz_ns']);

/** The source types a transform accepts, or the reason it does not. */
export function checkSourceType(t: Transform, source: string): string | undefined {
  const ok = (() => {
    switch (t.kind) {
      case 'identity':
      case 'void':
        return true;
      case 'year':
      case 'month':
      case 'day':
        return source === 'date' || TIME_SOURCES.has(source);
      case 'hour':
        return TIME_SOURCES.has(source);
      case 'bucket':
        return (
          ['int', 'long', 'date', 'time', 'string', 'uuid', 'binary'].includes(source) ||
          TIME_SOURCES.has(source) ||
          decimalOf(source) !== undefined ||
          source.startsWith('fixed[')
        );
      case 'truncate':
        return ['int', 'long', 'string', 'binary'].includes(source) || decimalOf(source) !== undefined;
    }
  })();
  return ok ? undefined : `transform ${transformString(t)} cannot be applied to type ${source}`;
}

/** The partition value's type: int for the date/time and bucket transforms, the source type otherwise. */
export function resultType(t: Transform, source: string): string {
  return ['year', 'month', 'day', 'hour', 'bucket'].includes(t.kind) ? 'int' : source;
}

/** The partition field name Iceberg's reference implementation gives by default. */
export function partitionFieldName(t: Transform, column: string): string {
  const suffix = {
    identity: '',
    year: '_year',
    month: '_month',
    day: '_day',
    hour: '_hour',
    bucket: '_bucket',
  };
  if (t.kind === 'truncate') return `${column}_trunc`;
  if (t.kind === 'void') return `${column}_null`;
  return `${column}${suffix[t.kind]}`;
}

/** Transforms whose result is ordered like the source: equal results at min and max cover the range. */
export const isMonotonic = (t: Transform) => t.kind !== 'bucket';

const floorDiv = (a: bigint, b: bigint) => (a >= 0n ? a / b : -((-a + b - 1n) / b));
const MICROS_PER_DAY = 86_400_000_000n;
const MICROS_PER_HOUR = 3_600_000_000n;

function toMicros(source: string, value: bigint): bigint {
  return source.endsWith('_ns') ? floorDiv(value, 1000n) : value;
}

function daysOf(source: string, value: IcebergValue): number {
  if (source === 'date') return value as number;
  return Number(floorDiv(toMicros(source, value as bigint), MICROS_PER_DAY));
}

function monthsOf(days: number): number {
  const d = new Date(days * 86_400_000);
  return (d.getUTCFullYear() - 1970) * 12 + d.getUTCMonth();
}

/** MurmurHash3 x86 32-bit, seed 0: the hash the spec prescribes for bucket[N]. */
export function murmur3(bytes: Uint8Array): number {
  const c1 = 0xcc9e2d51;
  const c2 = 0x1b873593;
  let h = 0;
  const blocks = bytes.length >>> 2;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i < blocks; i++) {
    let k = view.getUint32(i * 4, true);
    k = Math.imul(k, c1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, c2);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  const tail = blocks * 4;
  const rest = bytes.length & 3;
  if (rest > 0) {
    let k = 0;
    if (rest === 3) k ^= (bytes[tail + 2] as number) << 16;
    if (rest >= 2) k ^= (bytes[tail + 1] as number) << 8;
    k ^= bytes[tail] as number;
    k = Math.imul(k, c1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, c2);
    h ^= k;
  }
  h ^= bytes.length;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h | 0;
}

/** The bytes bucket[N] hashes: ints, dates and times as 8-byte longs, decimals as minimal unscaled bytes. */
function bucketBytes(source: string, value: IcebergValue): Uint8Array {
  if (source === 'int' || source === 'date') return toBytes('long', BigInt(value as number));
  if (isLongType(source)) return toBytes('long', toMicros(source, value as bigint));
  if (decimalOf(source)) return minimalBytes(value as bigint);
  return toBytes(source, value);
}

export function applyTransform(
  t: Transform,
  source: string,
  value: IcebergValue | null,
): IcebergValue | null {
  if (value === null || t.kind === 'void') return null;
  switch (t.kind) {
    case 'identity':
      return value;
    case 'year':
      return Math.floor(monthsOf(daysOf(source, value)) / 12);
    case 'month':
      return monthsOf(daysOf(source, value));
    case 'day':
      return daysOf(source, value);
    case 'hour':
      return Number(floorDiv(toMicros(source, value as bigint), MICROS_PER_HOUR));
    case 'bucket':
      return (murmur3(bucketBytes(source, value)) & 0x7fffffff) % t.width;
    case 'truncate': {
      if (source === 'int') {
        const v = value as number;
        return v - (((v % t.width) + t.width) % t.width);
      }
      if (source === 'long' || decimalOf(source)) {
        const v = value as bigint;
        const w = BigInt(t.width);
        return v - (((v % w) + w) % w);
      }
      if (source === 'string')
        return Array.from(value as string)
          .slice(0, t.width)
          .join('');
      return (value as Uint8Array).slice(0, t.width);
    }
  }
}
