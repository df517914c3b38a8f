import type { TableConfig } from '../config/schema.ts';
import type { IcebergType as UnnumberedType } from '../config/types.ts';
import { mapColumn } from '../config/types.ts';
import { InvalidMetadataError } from '../errors.ts';
import { JsonObject } from './json.ts';

/** Iceberg types in the table spec's JSON shape (Appendix C), so metadata serializes as is. */
export type FieldType = string | ListType | MapType | StructType;
export type NestedField = { id: number; name: string; required: boolean; type: FieldType; doc?: string };
export type StructType = { type: 'struct'; fields: NestedField[] };
export type ListType = {
  type: 'list';
  'element-id': number;
  element: FieldType;
  'element-required': boolean;
};
export type MapType = {
  type: 'map';
  'key-id': number;
  key: FieldType;
  'value-id': number;
  value: FieldType;
  'value-required': boolean;
};
export type Schema = StructType & { 'schema-id': number; 'identifier-field-ids'?: number[] };

const PRIMITIVE =
  /^(boolean|int|long|float|double|date|time|timestamp|timestamptz|timestamp_ns|timestamptz_ns|string|uuid|binary|decimal\(\d+, ?\d+\)|fixed\[\d+\])$/;

export const isPrimitive = (t: FieldType): t is string => typeof t === 'string';

/**
 * Gives a type's nested fields ids from `fresh`, in field order (a list's element, a map's key then
 * value), as Iceberg's reference implementation numbers them.
 */
export function numberType(t: UnnumberedType, fresh: () => number): FieldType {
  if (t.kind === 'primitive') return t.type;
  if (t.kind === 'list') {
    const elementId = fresh();
    return {
      type: 'list',
      'element-id': elementId,
      element: numberType(t.element, fresh),
      'element-required': t.elementRequired,
    };
  }
  const keyId = fresh();
  const valueId = fresh();
  return {
    type: 'map',
    'key-id': keyId,
    key: numberType(t.key, fresh),
    'value-id': valueId,
    value: numberType(t.value, fresh),
    'value-required': t.valueRequired,
  };
}

/**
 * The natural key as `identifier-field-ids`, when every key column is a required primitive that is not
 * a float (the spec's rule for identifier fields); otherwise none.
 */
export function identifierIds(fields: NestedField[], naturalKey: string[]): number[] | undefined {
  const keyFields = naturalKey.map((name) => fields.find((f) => f.name === name));
  return keyFields.every((f) => f?.required && isPrimitive(f.type) && !/^(float|double)$/.test(f.type))
    ? keyFields.map((f) => (f as NestedField).id)
    : undefined;
}

/**
 * Numbers a schema the way Iceberg's reference implementation does when a table is created: the fields
 * of a struct take consecutive ids first (so top-level columns are 1..N), then nested types are
 * numbered in field order. Tables created here and by Spark from the same columns therefore get the
 * same ids.
 */
export function schemaFromConfig(table: TableConfig, schemaId = 0): Schema {
  let next = 0;
  const fresh = () => ++next;
  const mapped = table.columns.map((c) => ({ column: c, mapping: mapColumn(c) }));
  const ids = mapped.map(() => fresh());
  const fields: NestedField[] = mapped.map(({ column, mapping }, i) => ({
    id: ids[i] as number,
    name: column.name,
    required: column.required && !mapping.optional,
    type: numberType(mapping.iceberg, fresh),
  }));
  const schema: Schema = { type: 'struct', 'schema-id': schemaId, fields };
  const identifier = identifierIds(fields, table.naturalKey);
  if (identifier) schema['identifier-field-ids'] = identifier;
  return schema;
}

/** Every field id in a type, nested ones included. */
export function fieldIds(t: FieldType): number[] {
  if (isPrimitive(t)) return [];
  if (t.type === 'struct') return t.fields.flatMap((f) => [f.id, ...fieldIds(f.type)]);
  if (t.type === 'list') return [t['element-id'], ...fieldIds(t.element)];
  return [t['key-id'], t['value-id'], ...fieldIds(t.key), ...fieldIds(t.value)];
}

export function maxFieldId(schema: StructType): number {
  return Math.max(0, ...fieldIds(schema));
}

/** A top-level or nested field by id, with the dotted name readers use. */
export function findField(schema: StructType, id: number): { field: NestedField; path: string } | undefined {
  const search = (
    fields: NestedField[],
    prefix: string,
  ): { field: NestedField; path: string } | undefined => {
    for (const f of fields) {
      const path = prefix ? `${prefix}.${f.name}` : f.name;
      if (f.id === id) return { field: f, path };
      if (!isPrimitive(f.type) && f.type.type === 'struct') {
        const found = search(f.type.fields, path);
        if (found) return found;
      }
    }
    return undefined;
  };
  return search(schema.fields, '');
}

/** Name mapping (`schema.name-mapping.default`): lets readers resolve Parquet columns without field ids. */
export type MappedField = { 'field-id': number; names: string[]; fields?: MappedField[] };

export function nameMapping(schema: StructType): MappedField[] {
  const nested = (t: FieldType): MappedField[] | undefined => {
    if (isPrimitive(t)) return undefined;
    if (t.type === 'struct') return t.fields.map(mapField);
    if (t.type === 'list') return [entry(t['element-id'], 'element', t.element)];
    return [entry(t['key-id'], 'key', t.key), entry(t['value-id'], 'value', t.value)];
  };
  const entry = (id: number, name: string, t: FieldType): MappedField => {
    const fields = nested(t);
    return fields ? { 'field-id': id, names: [name], fields } : { 'field-id': id, names: [name] };
  };
  const mapField = (f: NestedField) => entry(f.id, f.name, f.type);
  return schema.fields.map(mapField);
}

/**
 * The name mapping after a schema change: each field keeps the names it had (files written before a
 * rename carry the old one) and gains its current name; a name now used by another field leaves the
 * field that had it (a column dropped and added again is a new field).
 */
export function updatedNameMapping(existing: MappedField[], fields: NestedField[]): MappedField[] {
  const nested = (t: NestedField['type'], old: MappedField[] | undefined): MappedField[] | undefined => {
    if (isPrimitive(t)) return undefined;
    if (t.type === 'struct') return updatedNameMapping(old ?? [], t.fields);
    const entry = (id: number, name: string, type: NestedField['type']): MappedField => {
      const fields = nested(type, old?.find((m) => m['field-id'] === id)?.fields);
      return fields ? { 'field-id': id, names: [name], fields } : { 'field-id': id, names: [name] };
    };
    if (t.type === 'list') return [entry(t['element-id'], 'element', t.element)];
    return [entry(t['key-id'], 'key', t.key), entry(t['value-id'], 'value', t.value)];
  };
  const taken = new Set(fields.map((f) => f.name));
  const current = fields.map((f): MappedField => {
    const old = existing.find((m) => m['field-id'] === f.id);
    const names = [...(old?.names ?? []).filter((n) => n === f.name || !taken.has(n)), f.name];
    const children = nested(f.type, old?.fields);
    const entry: MappedField = { 'field-id': f.id, names: [...new Set(names)] };
    return children ? { ...entry, fields: children } : entry;
  });
  const ids = new Set(fields.map((f) => f.id));
  const gone = existing
    .filter((m) => !ids.has(m['field-id']))
    .map((m) => ({ ...m, names: m.names.filter((n) => !taken.has(n)) }))
    .filter((m) => m.names.length > 0);
  return [...current, ...gone];
}

/** A type as readers name it, without field ids: `decimal(18, 8)`, `list<string>`, `map<string, long>`. */
export function typeString(t: FieldType): string {
  if (isPrimitive(t)) return t.replace(/,\s*/, ', ');
  if (t.type === 'struct')
    return `struct<${t.fields.map((f) => `${f.name}: ${typeString(f.type)}`).join(', ')}>`;
  if (t.type === 'list') return `list<${typeString(t.element)}>`;
  return `map<${typeString(t.key)}, ${typeString(t.value)}>`;
}

/** Two types are the same but for field ids (nested requiredness included). */
export function sameType(a: FieldType, b: FieldType): boolean {
  const shape = (t: FieldType): unknown => {
    if (isPrimitive(t)) return t.replace(/\s/g, '');
    if (t.type === 'struct') return t.fields.map((f) => [f.name, f.required, shape(f.type)]);
    if (t.type === 'list') return ['list', t['element-required'], shape(t.element)];
    return ['map', t['value-required'], shape(t.key), shape(t.value)];
  };
  return JSON.stringify(shape(a)) === JSON.stringify(shape(b));
}

/** Two schemas describe the same table columns (ids, names, types, requiredness). Schema ids aside. */
export function sameColumns(a: StructType, b: StructType): boolean {
  const strip = (t: FieldType): unknown => {
    if (isPrimitive(t)) return t.replace(/\s/g, '');
    if (t.type === 'struct') return t.fields.map((f) => [f.id, f.name, f.required, strip(f.type)]);
    if (t.type === 'list') return ['list', t['element-id'], t['element-required'], strip(t.element)];
    return ['map', t['key-id'], t['value-id'], t['value-required'], strip(t.key), strip(t.value)];
  };
  return JSON.stringify(strip(a)) === JSON.stringify(strip(b));
}

export function parseFieldType(value: unknown, path: string, source: string): FieldType {
  if (typeof value === 'string') {
    if (!PRIMITIVE.test(value))
      throw new InvalidMetadataError(`${source}: ${path} has unknown type ${JSON.stringify(value)}`, {
        path,
      });
    return value;
  }
  const o = JsonObject.of(value, path, source);
  const kind = o.string('type');
  if (kind === 'struct') return parseStruct(o);
  if (kind === 'list')
    return {
      type: 'list',
      'element-id': o.int('element-id'),
      element: parseFieldType(o.raw.element, `${path}.element`, source),
      'element-required': o.bool('element-required'),
    };
  if (kind === 'map')
    return {
      type: 'map',
      'key-id': o.int('key-id'),
      key: parseFieldType(o.raw.key, `${path}.key`, source),
      'value-id': o.int('value-id'),
      value: parseFieldType(o.raw.value, `${path}.value`, source),
      'value-required': o.bool('value-required'),
    };
  return o.fail(`${path}.type must be struct, list or map, got ${JSON.stringify(kind)}`);
}

function parseStruct(o: JsonObject): StructType {
  return {
    type: 'struct',
    fields: o.objects('fields').map((f) => {
      const field: NestedField = {
        id: f.int('id'),
        name: f.string('name'),
        required: f.bool('required'),
        type: parseFieldType(f.raw.type, `${f.path}.type`, f.source),
      };
      const doc = f.optString('doc');
      return doc === undefined ? field : { ...field, doc };
    }),
  };
}

export function parseSchema(o: JsonObject): Schema {
  if (o.string('type') !== 'struct') o.fail(`${o.path}.type must be struct`);
  const schema: Schema = { type: 'struct', 'schema-id': o.int('schema-id'), fields: parseStruct(o).fields };
  if (o.has('identifier-field-ids'))
    schema['identifier-field-ids'] = o.array('identifier-field-ids').map((v, i) => {
      if (typeof v !== 'bigint') o.fail(`${o.path}.identifier-field-ids[${i}] must be an integer`);
      return Number(v);
    });
  return schema;
}
