import type { IcebergType as UnnumberedType } from '../config/types.ts';
import { CommitConflictError, SchemaDriftError } from '../errors.ts';
import { identString, type TableIdent } from './catalog.ts';
import { evolvePartitionSpec } from './evolve-spec.ts';
import { stringifyJson } from './json.ts';
import { currentSchema, type TableMetadata } from './metadata.ts';
import { type PartitionFieldRequest, TABLE_PROPERTIES } from './new-table.ts';
import {
  identifierIds,
  isPrimitive,
  type NestedField,
  numberType,
  type Schema,
  sameColumns,
  sameType,
  typeString,
  updatedNameMapping,
} from './schema.ts';
import {
  defaultSleep,
  mappingOf,
  nextMetadataLocation,
  nextVersion,
  publishMetadata,
  retryDelayMs,
} from './snapshot-update.ts';
import { type LoadedTable, loadTable, newestMarker, nowOf, randomOf, type TableDeps } from './table.ts';
import { decimalOf } from './values.ts';

/** What the table should look like, in Iceberg's terms: the columns we write, in order. */
export type WantedColumn = {
  name: string;
  type: UnnumberedType;
  required: boolean;
  /** The column's previous name: it keeps its field id (a rename is never guessed from names). */
  renamedFrom?: string | undefined;
};
export type WantedTable = {
  /** For messages: the table's name in the config. */
  name: string;
  columns: WantedColumn[];
  /** Columns to remove from the current schema; they stay in older schemas, their data stays in files. */
  dropped: string[];
  partitionSpec: PartitionFieldRequest[];
  naturalKey: string[];
};

export type SchemaChange = {
  kind: 'add-column' | 'promote-type' | 'rename-column' | 'drop-column' | 'make-optional' | 'partition-spec';
  column?: string;
  detail: string;
};

export type Evolution = { changes: SchemaChange[]; metadata: TableMetadata };

export const SCHEMA_RUNBOOK = 'docs/runbooks/schema-changes.md';

/** Iceberg's safe type promotions (format version 2): int -> long, float -> double, wider decimals. */
export function canPromote(from: string, to: string): boolean {
  if (from === 'int' && to === 'long') return true;
  if (from === 'float' && to === 'double') return true;
  const a = decimalOf(from);
  const b = decimalOf(to);
  return !!a && !!b && a.scale === b.scale && b.precision > a.precision;
}

/** The schema our newest offload was written with: what "our columns" were as far as Iceberg knows. */
function writtenSchema(metadata: TableMetadata): Schema | undefined {
  const marker = newestMarker(metadata);
  const snapshot = marker && metadata.snapshots.find((s) => s['snapshot-id'] === marker.snapshotId);
  const id = snapshot?.['schema-id'];
  return id === undefined ? undefined : metadata.schemas.find((s) => s['schema-id'] === id);
}

function refuse(wanted: WantedTable, column: string, problem: string, details: Record<string, unknown> = {}) {
  return new SchemaDriftError(
    `table ${wanted.name}: column ${column}: ${problem}; nothing offloaded. See ${SCHEMA_RUNBOOK}`,
    { table: wanted.name, column, ...details },
  );
}

const NEW_TABLE = 'the way to make this change is a new table and a backfill';

/**
 * Works out the schema and partition spec updates that bring `metadata` to `wanted`, as Iceberg allows
 * them: new columns become optional fields with new ids, types widen along the spec's promotions,
 * renames keep the field id, drops are explicit, a changed partitioning becomes a new spec (old files
 * keep theirs). Anything else throws a SchemaDriftError naming the column, both sides and what to do.
 * Columns another engine added are kept: optional ones are tolerated (our files leave them null), a
 * required one, or another engine's change to one of our columns, stops the table.
 * Pure: `changes` is empty when the table already matches, so a retry or a second cycle does nothing.
 */
export function evolveMetadata(metadata: TableMetadata, wanted: WantedTable): Evolution {
  const schema = currentSchema(metadata);
  const ours = writtenSchema(metadata);
  const oursById = (id: number) => ours?.fields.find((f) => f.id === id);
  let lastColumnId = metadata['last-column-id'];
  const fresh = () => ++lastColumnId;
  const fields: NestedField[] = schema.fields.map((f) => ({ ...f }));
  const matched = new Set<number>();
  const changes: SchemaChange[] = [];

  for (const c of wanted.columns) {
    const wantedType = numberType(c.type, () => 0);
    const field =
      fields.find((f) => f.name === c.name) ??
      (c.renamedFrom === undefined ? undefined : fields.find((f) => f.name === c.renamedFrom));
    if (!field) {
      const was = ours?.fields.find((f) => f.name === c.name || f.name === c.renamedFrom);
      if (was) {
        const now = fields.find((f) => f.id === was.id);
        throw refuse(
          wanted,
          c.name,
          now
            ? `another writer renamed it to ${now.name} (field id ${was.id}); rename it back in Iceberg, or rename it in ClickHouse and the config (renamedFrom: "${was.name}")`
            : `another writer dropped it from the Iceberg table (it was field id ${was.id}); adding it again would hide the rows written so far, so restore the column in Iceberg`,
          { fieldId: was.id },
        );
      }
      if (c.renamedFrom !== undefined)
        throw refuse(
          wanted,
          c.name,
          `renamedFrom ${c.renamedFrom}, but the Iceberg table has no column ${c.renamedFrom} (nor ${c.name}); fix renamedFrom, or remove it to add ${c.name} as a new column`,
        );
      const id = fresh();
      const type = numberType(c.type, fresh);
      fields.push({ id, name: c.name, required: false, type });
      matched.add(id);
      changes.push({
        kind: 'add-column',
        column: c.name,
        detail: `add optional column ${c.name} ${typeString(type)} (field id ${id})`,
      });
      continue;
    }
    matched.add(field.id);
    const was = oursById(field.id);
    if (field.name !== c.name) {
      if (fields.some((f) => f !== field && f.name === c.name))
        throw refuse(
          wanted,
          c.name,
          `cannot rename ${field.name} to ${c.name}: the table has a column ${c.name}`,
        );
      changes.push({
        kind: 'rename-column',
        column: c.name,
        detail: `rename column ${field.name} to ${c.name} (field id ${field.id} kept)`,
      });
      field.name = c.name;
    }
    if (!sameType(field.type, wantedType)) {
      const have = typeString(field.type);
      const want = typeString(wantedType);
      if (was && !sameType(was.type, field.type))
        throw refuse(
          wanted,
          c.name,
          `another writer changed its type from ${typeString(was.type)} to ${have}, the config maps it to ${want}; change the config to match, or ${NEW_TABLE}`,
          { iceberg: have, config: want },
        );
      if (!isPrimitive(field.type) || !isPrimitive(wantedType) || !canPromote(field.type, wantedType))
        throw refuse(
          wanted,
          c.name,
          `the Iceberg column is ${have}, the config maps it to ${want}, which is not a safe promotion (only int to long, float to double, decimal(P, S) to a larger P with the same S); ${NEW_TABLE}`,
          { iceberg: have, config: want },
        );
      changes.push({
        kind: 'promote-type',
        column: c.name,
        detail: `widen ${c.name} from ${have} to ${want}`,
      });
      field.type = wantedType;
    }
    if (field.required && !c.required) {
      if (was && !was.required)
        throw refuse(
          wanted,
          c.name,
          'another writer made it required, but the config has it optional (our rows may hold nulls); make it optional again in Iceberg, or mark it required in the config',
        );
      changes.push({ kind: 'make-optional', column: c.name, detail: `make ${c.name} optional` });
      field.required = false;
    }
  }

  const specSources = new Set(
    metadata['partition-specs'].flatMap((s) => s.fields.map((f) => f['source-id'])),
  );
  const kept: NestedField[] = [];
  for (const f of fields) {
    if (matched.has(f.id)) kept.push(f);
    else if (wanted.dropped.includes(f.name)) {
      if (f.required)
        throw refuse(
          wanted,
          f.name,
          'it is required in Iceberg, and readers may rely on it; dropping a required column is refused. Make it optional first (required: false in the config, one cycle), then drop it',
        );
      if (specSources.has(f.id))
        throw refuse(
          wanted,
          f.name,
          `it is the source of a partition field (field id ${f.id}); a partition source column stays in the table`,
        );
      changes.push({
        kind: 'drop-column',
        column: f.name,
        detail: `drop column ${f.name} (field id ${f.id})`,
      });
    } else if (f.required)
      throw refuse(
        wanted,
        f.name,
        oursById(f.id)
          ? 'it is required in Iceberg but no longer in the config, so our rows could not fill it; put it back in the config, or make it optional and list it in droppedColumns'
          : `another writer added it as a required column (field id ${f.id}); our rows cannot fill it. Make it optional in Iceberg, or add it to the config`,
        { fieldId: f.id },
      );
    // An optional column we do not write (another engine's, or one left out of the config) stays null.
    else kept.push(f);
  }

  const schemaChanged = changes.length > 0;
  let next: TableMetadata = metadata;
  if (schemaChanged) {
    const evolved: Schema = { type: 'struct', 'schema-id': 0, fields: kept };
    const identifier = identifierIds(kept, wanted.naturalKey);
    if (identifier) evolved['identifier-field-ids'] = identifier;
    // Iceberg reuses a schema id when the columns come back to an earlier schema.
    const same = metadata.schemas.find((s) => sameColumns(s, evolved));
    const schemaId = same?.['schema-id'] ?? Math.max(...metadata.schemas.map((s) => s['schema-id'])) + 1;
    next = {
      ...metadata,
      schemas: same ? metadata.schemas : [...metadata.schemas, { ...evolved, 'schema-id': schemaId }],
      'current-schema-id': schemaId,
      'last-column-id': Math.max(lastColumnId, metadata['last-column-id']),
      properties: {
        ...metadata.properties,
        [TABLE_PROPERTIES.nameMapping]: stringifyJson(updatedNameMapping(mappingOf(metadata), kept)),
      },
    };
  }
  return evolvePartitionSpec(next, wanted, changes);
}

export type EvolveResult = LoadedTable & { changes: SchemaChange[]; attempts: number };

/**
 * Brings the table to `wanted` in one metadata-only commit (no snapshot: data files are untouched),
 * compare-and-swapped in the catalog. A lost race reloads the table and works the changes out again on
 * what is there now, so a retry, or another cycle that evolved it first, ends with nothing to do.
 */
export async function evolveTable(
  deps: TableDeps & { maxAttempts?: number; sleep?: (ms: number) => Promise<void> },
  table: TableIdent,
  wanted: WantedTable,
): Promise<EvolveResult> {
  const random = randomOf(deps);
  const maxAttempts = deps.maxAttempts ?? 6;
  for (let attempt = 1; ; attempt++) {
    const loaded = await loadTable(deps, table);
    const { changes, metadata } = evolveMetadata(loaded.metadata, wanted);
    if (changes.length === 0) return { ...loaded, changes, attempts: attempt };
    const next = { ...nextVersion(metadata, loaded.metadataLocation, nowOf(deps)) };
    const nextLocation = nextMetadataLocation(deps, table, loaded.metadataLocation, loaded.metadata, random);
    try {
      await publishMetadata(deps, table, loaded.metadataLocation, nextLocation, next);
      return { metadataLocation: nextLocation, metadata: next, changes, attempts: attempt };
    } catch (error) {
      if (!(error instanceof CommitConflictError)) throw error;
      if (attempt >= maxAttempts)
        throw new CommitConflictError(
          `schema update of ${identString(table)} lost ${attempt} races for the catalog in a row; the next cycle tries again`,
          { table: identString(table), attempts: attempt },
          { cause: error },
        );
      await (deps.sleep ?? defaultSleep)(retryDelayMs(attempt, random));
    }
  }
}
