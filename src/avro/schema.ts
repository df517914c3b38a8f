/**
 * The Avro schemas we read and write. Extra attributes (Iceberg's `field-id`, `element-id`, `key-id`,
 * `value-id`, `logicalType`) are carried through untouched: the container header stores the schema JSON
 * exactly as given, because Iceberg readers resolve manifest fields by those ids.
 */
export const AVRO_PRIMITIVES = [
  'null',
  'boolean',
  'int',
  'long',
  'float',
  'double',
  'bytes',
  'string',
] as const;
export type AvroPrimitive = (typeof AVRO_PRIMITIVES)[number];

export type AvroField = { name: string; type: AvroSchema; default?: unknown; [attribute: string]: unknown };
export type AvroRecord = { type: 'record'; name: string; fields: AvroField[]; [attribute: string]: unknown };
export type AvroArray = { type: 'array'; items: AvroSchema; [attribute: string]: unknown };
export type AvroMap = { type: 'map'; values: AvroSchema; [attribute: string]: unknown };
export type AvroFixed = { type: 'fixed'; name: string; size: number; [attribute: string]: unknown };
export type AvroEnum = { type: 'enum'; name: string; symbols: string[]; [attribute: string]: unknown };
export type AvroAnnotated = { type: AvroPrimitive; [attribute: string]: unknown };
export type AvroSchema =
  | AvroPrimitive
  | string
  | AvroRecord
  | AvroArray
  | AvroMap
  | AvroFixed
  | AvroEnum
  | AvroAnnotated
  | AvroSchema[];

/**
 * A schema with every named reference resolved, so encoding and decoding never look names up.
 * `union` branches and `record` fields point at resolved nodes (recursive schemas share nodes).
 */
export type Resolved =
  | { kind: AvroPrimitive }
  | { kind: 'record'; name: string; fields: Array<{ name: string; type: Resolved; default?: unknown }> }
  | { kind: 'array'; items: Resolved }
  | { kind: 'map'; values: Resolved }
  | { kind: 'fixed'; name: string; size: number }
  | { kind: 'enum'; name: string; symbols: string[] }
  | { kind: 'union'; branches: Resolved[] };

const isPrimitive = (s: string): s is AvroPrimitive => (AVRO_PRIMITIVES as readonly string[]).includes(s);

function fullName(name: string, namespace: string | undefined): string {
  return name.includes('.') || !namespace ? name : `${namespace}.${name}`;
}

/** Resolves named types; throws on unknown names or malformed schemas, naming the offending part. */
export function resolveSchema(schema: AvroSchema): Resolved {
  const named = new Map<string, Resolved>();
  const walk = (s: AvroSchema, namespace: string | undefined): Resolved => {
    if (typeof s === 'string') {
      if (isPrimitive(s)) return { kind: s };
      const found = named.get(fullName(s, namespace)) ?? named.get(s);
      if (!found) throw new Error(`Avro schema: unknown type name ${JSON.stringify(s)}`);
      return found;
    }
    if (Array.isArray(s)) return { kind: 'union', branches: s.map((b) => walk(b, namespace)) };
    if (typeof s !== 'object' || s === null) throw new Error(`Avro schema: cannot read ${JSON.stringify(s)}`);
    const ns = typeof s.namespace === 'string' ? s.namespace : namespace;
    switch (s.type) {
      case 'record': {
        const r = s as AvroRecord;
        const node: Resolved = { kind: 'record', name: r.name, fields: [] };
        named.set(fullName(r.name, ns), node);
        if (!Array.isArray(r.fields)) throw new Error(`Avro schema: record ${r.name} has no fields array`);
        for (const f of r.fields)
          node.fields.push({
            name: f.name,
            type: walk(f.type, ns),
            ...('default' in f ? { default: f.default } : {}),
          });
        return node;
      }
      case 'array':
        return { kind: 'array', items: walk((s as AvroArray).items, ns) };
      case 'map':
        return { kind: 'map', values: walk((s as AvroMap).values, ns) };
      case 'fixed': {
        const f = s as AvroFixed;
        const node: Resolved = { kind: 'fixed', name: f.name, size: f.size };
        named.set(fullName(f.name, ns), node);
        return node;
      }
      case 'enum': {
        const e = s as AvroEnum;
        const node: Resolved = { kind: 'enum', name: e.name, symbols: e.symbols };
        named.set(fullName(e.name, ns), node);
        return node;
      }
      default: {
        const inner = (s as { type: unknown }).type;
        if (typeof inner === 'string' && isPrimitive(inner)) return { kind: inner };
        // `{ "type": { ... } }` wraps a nested schema.
        if (typeof inner === 'object' && inner !== null) return walk(inner as AvroSchema, ns);
        throw new Error(`Avro schema: unknown type ${JSON.stringify(inner)}`);
      }
    }
  };
  return walk(schema, undefined);
}
