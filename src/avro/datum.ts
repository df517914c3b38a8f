import type { ByteReader, ByteWriter } from './binary.ts';
import type { Resolved } from './schema.ts';

/**
 * Values as JS sees them: `long` is written from number or bigint and read as bigint; bytes and fixed
 * are Uint8Array; records are plain objects; maps are plain objects keyed by string.
 */
export type AvroValue = unknown;

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);

function matches(type: Resolved, value: unknown): boolean {
  switch (type.kind) {
    case 'null':
      return value === null || value === undefined;
    case 'boolean':
      return typeof value === 'boolean';
    case 'int':
      return typeof value === 'number' && Number.isInteger(value) && Math.abs(value) < 2 ** 31;
    case 'long':
      return typeof value === 'bigint' || (typeof value === 'number' && Number.isInteger(value));
    case 'float':
    case 'double':
      return typeof value === 'number';
    case 'bytes':
      return value instanceof Uint8Array;
    case 'fixed':
      return value instanceof Uint8Array && value.length === type.size;
    case 'string':
    case 'enum':
      return typeof value === 'string';
    case 'array':
      return Array.isArray(value);
    case 'record':
    case 'map':
      return isPlainObject(value);
    case 'union':
      return type.branches.some((b) => matches(b, value));
  }
}

const describe = (value: unknown) =>
  value instanceof Uint8Array
    ? `bytes[${value.length}]`
    : typeof value === 'bigint'
      ? `${value}n`
      : JSON.stringify(value);

export function encodeDatum(type: Resolved, value: unknown, out: ByteWriter, path = '$'): void {
  const fail = (expected: string): never => {
    throw new TypeError(`Avro encode ${path}: expected ${expected}, got ${describe(value)}`);
  };
  switch (type.kind) {
    case 'null':
      if (value !== null && value !== undefined) fail('null');
      return;
    case 'boolean':
      if (typeof value !== 'boolean') fail('boolean');
      out.byte(value ? 1 : 0);
      return;
    case 'int':
      if (typeof value !== 'number') fail('int');
      out.int(value as number);
      return;
    case 'long':
      if (typeof value !== 'number' && typeof value !== 'bigint') fail('long');
      out.long(value as number | bigint);
      return;
    case 'float':
      if (typeof value !== 'number') fail('float');
      out.float(value as number);
      return;
    case 'double':
      if (typeof value !== 'number') fail('double');
      out.double(value as number);
      return;
    case 'bytes':
      if (!(value instanceof Uint8Array)) fail('bytes');
      out.bytes(value as Uint8Array);
      return;
    case 'string':
      if (typeof value !== 'string') fail('string');
      out.string(value as string);
      return;
    case 'fixed':
      if (!(value instanceof Uint8Array) || value.length !== type.size) fail(`fixed[${type.size}]`);
      out.raw(value as Uint8Array);
      return;
    case 'enum': {
      const index = type.symbols.indexOf(value as string);
      if (index < 0) fail(`one of ${type.symbols.join(', ')}`);
      out.int(index);
      return;
    }
    case 'array': {
      if (!Array.isArray(value)) fail('array');
      const items = value as unknown[];
      if (items.length > 0) {
        out.long(items.length);
        for (let i = 0; i < items.length; i++) encodeDatum(type.items, items[i], out, `${path}[${i}]`);
      }
      out.long(0);
      return;
    }
    case 'map': {
      if (!isPlainObject(value)) fail('map object');
      const entries = Object.entries(value as Record<string, unknown>);
      if (entries.length > 0) {
        out.long(entries.length);
        for (const [k, v] of entries) {
          out.string(k);
          encodeDatum(type.values, v, out, `${path}.${k}`);
        }
      }
      out.long(0);
      return;
    }
    case 'record': {
      if (!isPlainObject(value)) fail(`record ${type.name}`);
      const record = value as Record<string, unknown>;
      for (const field of type.fields) {
        const v = field.name in record ? record[field.name] : field.default;
        encodeDatum(field.type, v, out, `${path}.${field.name}`);
      }
      return;
    }
    case 'union': {
      const index = type.branches.findIndex((b) => matches(b, value));
      if (index < 0) fail(`one of the union branches ${type.branches.map((b) => b.kind).join(' | ')}`);
      out.long(index);
      encodeDatum(type.branches[index] as Resolved, value, out, path);
      return;
    }
  }
}

export function decodeDatum(type: Resolved, input: ByteReader): unknown {
  switch (type.kind) {
    case 'null':
      return null;
    case 'boolean':
      return input.byte() !== 0;
    case 'int':
      return input.int();
    case 'long':
      return input.long();
    case 'float':
      return input.float();
    case 'double':
      return input.double();
    case 'bytes':
      return input.bytes().slice();
    case 'string':
      return input.string();
    case 'fixed':
      return input.raw(type.size).slice();
    case 'enum': {
      const index = input.int();
      const symbol = type.symbols[index];
      if (symbol === undefined) throw new RangeError(`Avro enum ${type.name}: no symbol at index ${index}`);
      return symbol;
    }
    case 'array': {
      const items: unknown[] = [];
      input.blocks(() => items.push(decodeDatum(type.items, input)));
      return items;
    }
    case 'map': {
      const map: Record<string, unknown> = {};
      input.blocks(() => {
        const key = input.string();
        map[key] = decodeDatum(type.values, input);
      });
      return map;
    }
    case 'record': {
      const record: Record<string, unknown> = {};
      for (const field of type.fields) record[field.name] = decodeDatum(field.type, input);
      return record;
    }
    case 'union': {
      const index = input.safeLong();
      const branch = type.branches[index];
      if (!branch) throw new RangeError(`Avro union has no branch ${index}`);
      return decodeDatum(branch, input);
    }
  }
}
