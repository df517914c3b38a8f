import type { FileMetaData, SchemaElement, SchemaTree } from 'hyparquet';
import { parquetSchema } from 'hyparquet';
import { SchemaDriftError } from '../errors.ts';
import {
  type FieldType,
  isPrimitive,
  type MappedField,
  type NestedField,
  type StructType,
} from './schema.ts';
import { decimalOf } from './values.ts';

/**
 * Which Iceberg field each Parquet leaf column holds. Field ids written in the file win; files without
 * them (ClickHouse writes none) are resolved through the table's name mapping, walking lists
 * (`a.list.element`) and maps (`m.key_value.key`) the way the spec's Parquet appendix describes.
 */
export type LeafColumn = {
  /** Index of the column chunk in each row group. */
  index: number;
  fieldId: number;
  type: string;
  /** Inside a list or map: Iceberg keeps no bounds for those. */
  repeated: boolean;
  /** Definition level 0: no nulls possible. */
  required: boolean;
  element: SchemaElement;
  /** The top-level column name, for reading values. */
  topName: string;
};

export function resolveColumns(
  metadata: FileMetaData,
  table: StructType,
  mapping: MappedField[],
  uri: string,
): LeafColumn[] {
  const chunkIndex = new Map<string, number>();
  metadata.row_groups[0]?.columns.forEach((c, i) => {
    if (c.meta_data) chunkIndex.set(c.meta_data.path_in_schema.join('.'), i);
  });
  // A file without row groups still has a schema: number its leaves in schema order.
  const leafOrder: string[] = [];
  const collect = (n: SchemaTree) => {
    if (n.children.length === 0) leafOrder.push(n.path.join('.'));
    else n.children.forEach(collect);
  };
  const root = parquetSchema(metadata);
  collect(root);
  leafOrder.forEach((p, i) => {
    if (!chunkIndex.has(p)) chunkIndex.set(p, i);
  });

  const leaves: LeafColumn[] = [];
  const presentTopLevel = new Set<number>();
  const drift = (message: string): never => {
    throw new SchemaDriftError(`data file ${uri}: ${message}`, { uri });
  };

  const visit = (
    node: SchemaTree,
    type: FieldType,
    id: number,
    mapped: MappedField | undefined,
    repeated: boolean,
    required: boolean,
    topName: string,
  ) => {
    const name = node.path.join('.');
    required = required && node.element.repetition_type === 'REQUIRED';
    if (isPrimitive(type)) {
      if (node.children.length > 0) drift(`column ${name} is a group but the table has ${type}`);
      const problem = incompatibility(node.element, type);
      if (problem) drift(`column ${name}: ${problem}`);
      leaves.push({
        index: chunkIndex.get(name) as number,
        fieldId: id,
        type,
        repeated,
        required,
        element: node.element,
        topName,
      });
      return;
    }
    if (type.type === 'struct') {
      visitStruct(node.children, type, mapped?.fields ?? [], repeated, required, topName);
      return;
    }
    const group = node.children[0];
    if (!group || node.children.length !== 1) return drift(`column ${name} is not a Parquet ${type.type}`);
    if (type.type === 'list') {
      // Two-level lists (legacy writers) put the element directly in the repeated group.
      const legacy =
        group.children.length !== 1 ||
        group.element.name === 'array' ||
        group.element.name === `${node.element.name}_tuple`;
      const element = legacy ? group : (group.children[0] as SchemaTree);
      const elementId = element.element.field_id ?? type['element-id'];
      visit(element, type.element, elementId, mapped?.fields?.[0], true, false, topName);
      return;
    }
    const [key, value] = group.children;
    if (!key || !value) return drift(`column ${name} is not a Parquet map (key_value needs key and value)`);
    visit(key, type.key, key.element.field_id ?? type['key-id'], mapped?.fields?.[0], true, false, topName);
    visit(
      value,
      type.value,
      value.element.field_id ?? type['value-id'],
      mapped?.fields?.[1],
      true,
      false,
      topName,
    );
  };

  const visitStruct = (
    children: SchemaTree[],
    struct: StructType,
    mapped: MappedField[],
    repeated: boolean,
    required: boolean,
    topLevel: string | undefined,
  ) => {
    for (const child of children) {
      const name = child.element.name;
      const byName = mapped.find((m) => m.names.includes(name));
      const id = child.element.field_id ?? byName?.['field-id'];
      // Columns the table does not know are not part of it; readers skip them too.
      const field: NestedField | undefined = struct.fields.find((f) => f.id === id);
      if (!field || id === undefined) continue;
      if (topLevel === undefined) presentTopLevel.add(id);
      visit(child, field.type, id, byName, repeated, required, topLevel ?? name);
    }
  };

  visitStruct(root.children, table, mapping, false, true, undefined);
  for (const f of table.fields)
    if (f.required && !presentTopLevel.has(f.id))
      drift(`required column ${f.name} (field id ${f.id}) is missing from the file`);
  return leaves;
}

/** Why a Parquet leaf cannot hold values of an Iceberg type, or undefined when it can. */
function incompatibility(e: SchemaElement, type: string): string | undefined {
  const lt = e.logical_type;
  const has = (physical: string[]) =>
    physical.includes(e.type ?? '') ? undefined : `Parquet ${e.type} cannot hold Iceberg ${type}`;
  const dec = decimalOf(type);
  if (dec) {
    const scale = e.scale ?? (lt?.type === 'DECIMAL' ? lt.scale : undefined);
    if (e.converted_type !== 'DECIMAL' && lt?.type !== 'DECIMAL') return `Parquet ${e.type} is not a decimal`;
    if (scale !== dec.scale) return `decimal scale ${scale} differs from the table's ${type}`;
    return has(['INT32', 'INT64', 'FIXED_LEN_BYTE_ARRAY', 'BYTE_ARRAY']);
  }
  switch (type) {
    case 'boolean':
      return has(['BOOLEAN']);
    case 'int':
    case 'date':
      return has(['INT32']);
    case 'long':
      return has(['INT64', 'INT32']);
    case 'float':
      return has(['FLOAT']);
    case 'double':
      return has(['DOUBLE', 'FLOAT']);
    case 'string':
    case 'binary':
      return has(['BYTE_ARRAY']);
    case 'uuid':
      return e.type === 'FIXED_LEN_BYTE_ARRAY' && e.type_length === 16
        ? undefined
        : `Iceberg uuid needs FIXED_LEN_BYTE_ARRAY(16), got ${e.type}`;
    case 'timestamp':
    case 'timestamptz':
    case 'timestamp_ns':
    case 'timestamptz_ns': {
      if (e.type !== 'INT64' || lt?.type !== 'TIMESTAMP')
        return `Iceberg ${type} needs an INT64 TIMESTAMP, got ${e.type}`;
      const unit = type.endsWith('_ns') ? 'NANOS' : 'MICROS';
      if (lt.unit !== unit) return `Iceberg ${type} needs TIMESTAMP(${unit}), got ${lt.unit}`;
      if (lt.isAdjustedToUTC !== type.startsWith('timestamptz'))
        return `Iceberg ${type} needs isAdjustedToUTC=${type.startsWith('timestamptz')}`;
      return undefined;
    }
    default:
      return type.startsWith('fixed[') ? has(['FIXED_LEN_BYTE_ARRAY']) : undefined;
  }
}

/** The Iceberg field id of each top-level column of a Parquet file (its own id, else the name mapping's). */
export function topLevelFieldIds(metadata: FileMetaData, mapping: MappedField[]): Map<number, string> {
  const out = new Map<number, string>();
  for (const child of parquetSchema(metadata).children) {
    const name = child.element.name;
    const id = child.element.field_id ?? mapping.find((m) => m.names.includes(name))?.['field-id'];
    if (id !== undefined) out.set(id, name);
  }
  return out;
}
