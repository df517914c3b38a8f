import { isInteger, parse, stringify } from 'lossless-json';
import { InvalidMetadataError } from '../errors.ts';

/**
 * JSON for Iceberg metadata. Snapshot ids are random 63-bit numbers and plain `JSON.parse` rounds
 * them to the nearest double, so every integer is parsed as `bigint`; readers below narrow them to
 * `number` where the spec's type is int.
 */
export function parseJson(text: string): unknown {
  return parse(text, null, (value) => (isInteger(value) ? BigInt(value) : Number.parseFloat(value)));
}

/** Serializes with `bigint` written as plain JSON integers; `undefined` members are left out. */
export function stringifyJson(value: unknown, indent?: number): string {
  const text = stringify(value, null, indent);
  if (text === undefined) throw new TypeError('cannot serialize undefined as JSON');
  return text;
}

const INT_MIN = -(2n ** 31n);
const INT_MAX = 2n ** 31n - 1n;

/** Typed access to one JSON object with errors that name the document, the path and the expectation. */
export class JsonObject {
  constructor(
    readonly raw: Record<string, unknown>,
    readonly path: string,
    readonly source: string,
  ) {}

  static of(value: unknown, path: string, source: string): JsonObject {
    if (typeof value !== 'object' || value === null || Array.isArray(value))
      throw new InvalidMetadataError(`${source}: ${path} must be a JSON object`, { source, path });
    return new JsonObject(value as Record<string, unknown>, path, source);
  }

  fail(message: string, key?: string): never {
    const at = key === undefined ? this.path : `${this.path}.${key}`;
    throw new InvalidMetadataError(`${this.source}: ${message}`, { source: this.source, path: at });
  }

  has(key: string): boolean {
    return this.raw[key] !== undefined && this.raw[key] !== null;
  }

  private required(key: string): unknown {
    const v = this.raw[key];
    if (v === undefined || v === null) this.fail(`${this.where(key)} is required`, key);
    return v;
  }

  private where(key: string) {
    return this.path === '' ? key : `${this.path}.${key}`;
  }

  string(key: string): string {
    const v = this.required(key);
    if (typeof v !== 'string') this.fail(`${this.where(key)} must be a string`, key);
    return v as string;
  }

  optString(key: string): string | undefined {
    return this.has(key) ? this.string(key) : undefined;
  }

  long(key: string): bigint {
    const v = this.required(key);
    if (typeof v === 'bigint') return v;
    if (typeof v === 'number' && Number.isSafeInteger(v)) return BigInt(v);
    return this.fail(`${this.where(key)} must be an integer (long)`, key);
  }

  optLong(key: string): bigint | undefined {
    return this.has(key) ? this.long(key) : undefined;
  }

  int(key: string): number {
    const v = this.long(key);
    if (v < INT_MIN || v > INT_MAX) this.fail(`${this.where(key)} must be a 32-bit integer, got ${v}`, key);
    return Number(v);
  }

  optInt(key: string): number | undefined {
    return this.has(key) ? this.int(key) : undefined;
  }

  /** Millisecond timestamps: longs in the spec, safe as `number` until the year 287396. */
  millis(key: string): number {
    const v = this.long(key);
    return Number(v);
  }

  bool(key: string): boolean {
    const v = this.required(key);
    if (typeof v !== 'boolean') this.fail(`${this.where(key)} must be true or false`, key);
    return v as boolean;
  }

  object(key: string): JsonObject {
    return JsonObject.of(this.required(key), this.where(key), this.source);
  }

  array(key: string): unknown[] {
    const v = this.required(key);
    if (!Array.isArray(v)) this.fail(`${this.where(key)} must be an array`, key);
    return v as unknown[];
  }

  objects(key: string): JsonObject[] {
    return this.array(key).map((v, i) => JsonObject.of(v, `${this.where(key)}[${i}]`, this.source));
  }

  optObjects(key: string): JsonObject[] {
    return this.has(key) ? this.objects(key) : [];
  }

  stringMap(key: string): Record<string, string> {
    if (!this.has(key)) return {};
    const o = this.object(key);
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries(o.raw)) {
      if (typeof v !== 'string') o.fail(`${o.path}.${k} must be a string`, k);
      out[k] = v as string;
    }
    return out;
  }
}
