import type { Column } from '@aws-sdk/client-glue';
import type { TableMetadata } from './metadata.ts';
import { currentSchema } from './metadata.ts';
import { type FieldType, isPrimitive, type NestedField } from './schema.ts';
import { decimalOf } from './values.ts';

const HIVE: Record<string, string> = {
  boolean: 'boolean',
  int: 'int',
  long: 'bigint',
  float: 'float',
  double: 'double',
  date: 'date',
  time: 'string',
  timestamp: 'timestamp',
  timestamptz: 'timestamp',
  timestamp_ns: 'timestamp',
  timestamptz_ns: 'timestamp',
  string: 'string',
  uuid: 'string',
  binary: 'binary',
};

/** The Hive type name Glue (and Athena's DDL views) show for an Iceberg type, as Iceberg's GlueCatalog writes it. */
export function hiveType(t: FieldType): string {
  if (isPrimitive(t)) {
    const decimal = decimalOf(t);
    if (decimal) return `decimal(${decimal.precision},${decimal.scale})`;
    return HIVE[t] ?? (t.startsWith('fixed[') ? 'binary' : t);
  }
  if (t.type === 'struct') return `struct<${t.fields.map((f) => `${f.name}:${hiveType(f.type)}`).join(',')}>`;
  if (t.type === 'list') return `array<${hiveType(t.element)}>`;
  return `map<${hiveType(t.key)},${hiveType(t.value)}>`;
}

/**
 * The Glue table's columns for Iceberg metadata, as Iceberg's own GlueCatalog sets them: the current
 * schema's columns, then columns of older schemas no longer current (dropped or renamed away) marked
 * `iceberg.field.current=false`, each with its field id and whether it is optional.
 */
export function glueColumns(metadata: TableMetadata): Column[] {
  const current = currentSchema(metadata);
  const column = (f: NestedField, isCurrent: boolean): Column => ({
    Name: f.name,
    Type: hiveType(f.type),
    ...(f.doc ? { Comment: f.doc } : {}),
    Parameters: {
      'iceberg.field.id': String(f.id),
      'iceberg.field.optional': String(!f.required),
      'iceberg.field.current': String(isCurrent),
    },
  });
  const seen = new Set(current.fields.map((f) => f.name));
  const out = current.fields.map((f) => column(f, true));
  for (const schema of [...metadata.schemas].reverse())
    for (const f of schema.fields)
      if (!seen.has(f.name)) {
        seen.add(f.name);
        out.push(column(f, false));
      }
  return out;
}
