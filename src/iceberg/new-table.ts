import type { TableConfig } from '../config/schema.ts';
import { ConfigError } from '../errors.ts';
import type { TableIdent } from './catalog.ts';
import { stringifyJson } from './json.ts';
import type { PartitionSpec, TableMetadata } from './metadata.ts';
import { joinUri } from './object-store.ts';
import { isPrimitive, maxFieldId, nameMapping, type Schema, schemaFromConfig } from './schema.ts';
import { checkSourceType, parseTransform, partitionFieldName } from './transforms.ts';

/** The first partition field id; the spec reserves lower ids for v1 tables' implicit numbering. */
export const FIRST_PARTITION_FIELD_ID = 1000;

export const TABLE_PROPERTIES = {
  formatDefault: 'write.format.default',
  compression: 'write.parquet.compression-codec',
  nameMapping: 'schema.name-mapping.default',
} as const;

/** `<warehouse>/<namespace>/<name>`, the layout of Iceberg's JDBC catalog. */
export function defaultTableLocation(warehouse: string, table: TableIdent): string {
  return joinUri(warehouse, table.namespace, table.name);
}

export type PartitionFieldRequest = { column: string; transform: string };

/**
 * A partition spec over `schema`'s top-level columns. `fieldIdOf` numbers each field (a new table:
 * 1000, 1001...; an evolved spec keeps the ids of fields that existed before). Errors name the table.
 */
export function buildPartitionSpec(
  tableName: string,
  fields: PartitionFieldRequest[],
  schema: Schema,
  specId: number,
  fieldIdOf: (sourceId: number, transform: string, index: number) => number,
): PartitionSpec {
  return {
    'spec-id': specId,
    fields: fields.map((p, i) => {
      const source = schema.fields.find((f) => f.name === p.column);
      if (!source)
        throw new ConfigError(
          `table ${tableName}: partition column ${p.column} is not one of the table's columns`,
          { table: tableName, column: p.column },
        );
      const transform = parseTransform(p.transform);
      const problem = isPrimitive(source.type)
        ? checkSourceType(transform, source.type)
        : `${p.column} is a ${source.type.type}, not a primitive`;
      if (problem)
        throw new ConfigError(`table ${tableName}: partition on ${p.column}: ${problem}`, {
          table: tableName,
          column: p.column,
        });
      return {
        'source-id': source.id,
        'field-id': fieldIdOf(source.id, p.transform, i),
        name: partitionFieldName(transform, p.column),
        transform: p.transform,
      };
    }),
  };
}

export function partitionSpecFromConfig(table: TableConfig, schema: Schema, specId = 0): PartitionSpec {
  return buildPartitionSpec(
    table.name,
    table.partitionSpec,
    schema,
    specId,
    (_s, _t, i) => FIRST_PARTITION_FIELD_ID + i,
  );
}

export type NewTableOptions = {
  location: string;
  /** A fresh random UUID (injected so metadata is reproducible in tests). */
  tableUuid: string;
  nowMs: number;
  properties?: Record<string, string>;
};

/** Metadata of an empty table: one schema, one partition spec, unsorted, no snapshots. */
export function newTableMetadata(table: TableConfig, options: NewTableOptions): TableMetadata {
  const schema = schemaFromConfig(table);
  const spec = partitionSpecFromConfig(table, schema);
  return {
    'format-version': 2,
    'table-uuid': options.tableUuid,
    location: options.location.replace(/\/+$/, ''),
    'last-sequence-number': 0n,
    'last-updated-ms': options.nowMs,
    'last-column-id': maxFieldId(schema),
    schemas: [schema],
    'current-schema-id': schema['schema-id'],
    'partition-specs': [spec],
    'default-spec-id': spec['spec-id'],
    'last-partition-id': Math.max(FIRST_PARTITION_FIELD_ID - 1, ...spec.fields.map((f) => f['field-id'])),
    properties: {
      [TABLE_PROPERTIES.formatDefault]: 'parquet',
      [TABLE_PROPERTIES.compression]: 'zstd',
      [TABLE_PROPERTIES.nameMapping]: stringifyJson(nameMapping(schema)),
      ...options.properties,
    },
    snapshots: [],
    'snapshot-log': [],
    'metadata-log': [],
    'sort-orders': [{ 'order-id': 0, fields: [] }],
    'default-sort-order-id': 0,
    refs: {},
  };
}
