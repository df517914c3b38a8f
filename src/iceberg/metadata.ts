import { InvalidMetadataError } from '../errors.ts';
import { JsonObject, parseJson, stringifyJson } from './json.ts';
import { findField, maxFieldId, parseSchema, type Schema } from './schema.ts';

/** Table metadata, format version 2 (table spec, "Table Metadata"), with the spec's own member names. */
export type PartitionField = { 'source-id': number; 'field-id': number; name: string; transform: string };
export type PartitionSpec = { 'spec-id': number; fields: PartitionField[] };
export type SortField = {
  transform: string;
  'source-id': number;
  direction: 'asc' | 'desc';
  'null-order': 'nulls-first' | 'nulls-last';
};
export type SortOrder = { 'order-id': number; fields: SortField[] };
export type SnapshotSummary = { operation: string; [key: string]: string };
export type Snapshot = {
  'snapshot-id': bigint;
  'parent-snapshot-id'?: bigint;
  'sequence-number': bigint;
  'timestamp-ms': number;
  'manifest-list': string;
  summary: SnapshotSummary;
  'schema-id'?: number;
};
export type SnapshotRef = {
  'snapshot-id': bigint;
  type: 'branch' | 'tag';
  'min-snapshots-to-keep'?: number;
  'max-snapshot-age-ms'?: number;
  'max-ref-age-ms'?: number;
};
export type SnapshotLogEntry = { 'timestamp-ms': number; 'snapshot-id': bigint };
export type MetadataLogEntry = { 'timestamp-ms': number; 'metadata-file': string };

export type TableMetadata = {
  'format-version': 2;
  'table-uuid': string;
  location: string;
  'last-sequence-number': bigint;
  'last-updated-ms': number;
  'last-column-id': number;
  schemas: Schema[];
  'current-schema-id': number;
  'partition-specs': PartitionSpec[];
  'default-spec-id': number;
  'last-partition-id': number;
  properties: Record<string, string>;
  'current-snapshot-id'?: bigint;
  snapshots: Snapshot[];
  'snapshot-log': SnapshotLogEntry[];
  'metadata-log': MetadataLogEntry[];
  'sort-orders': SortOrder[];
  'default-sort-order-id': number;
  refs: Record<string, SnapshotRef>;
  /** Members this module does not interpret (statistics files...), written back unchanged. */
  extra?: Record<string, unknown>;
};

export const MAIN_BRANCH = 'main';
const OPERATIONS = ['append', 'replace', 'overwrite', 'delete'];
const KNOWN = new Set([
  'format-version',
  'table-uuid',
  'location',
  'last-sequence-number',
  'last-updated-ms',
  'last-column-id',
  'schema',
  'schemas',
  'current-schema-id',
  'partition-spec',
  'partition-specs',
  'default-spec-id',
  'last-partition-id',
  'properties',
  'current-snapshot-id',
  'snapshots',
  'snapshot-log',
  'metadata-log',
  'sort-orders',
  'default-sort-order-id',
  'refs',
]);

const ids = (xs: Array<number | bigint>) => xs.map(String).join(', ') || 'none';

function unique<T>(items: T[], key: (t: T) => number | bigint, what: string, fail: (m: string) => never) {
  const seen = new Set<string>();
  for (const item of items) {
    const k = String(key(item));
    if (seen.has(k)) fail(`${what} ${k} appears more than once`);
    seen.add(k);
  }
}

function parseSnapshot(o: JsonObject): Snapshot {
  const summary = o.stringMap('summary');
  if (summary.operation === undefined) o.fail(`${o.path}.summary.operation is required`);
  if (!OPERATIONS.includes(summary.operation as string))
    o.fail(`${o.path}.summary.operation must be one of ${OPERATIONS.join(', ')}, got ${summary.operation}`);
  const s: Snapshot = {
    'snapshot-id': o.long('snapshot-id'),
    'sequence-number': o.long('sequence-number'),
    'timestamp-ms': o.millis('timestamp-ms'),
    'manifest-list': o.string('manifest-list'),
    summary: summary as SnapshotSummary,
  };
  const parent = o.optLong('parent-snapshot-id');
  if (parent !== undefined) s['parent-snapshot-id'] = parent;
  const schemaId = o.optInt('schema-id');
  if (schemaId !== undefined) s['schema-id'] = schemaId;
  return s;
}

function parseRef(o: JsonObject): SnapshotRef {
  const type = o.string('type');
  if (type !== 'branch' && type !== 'tag') o.fail(`${o.path}.type must be branch or tag, got ${type}`);
  const ref: SnapshotRef = { 'snapshot-id': o.long('snapshot-id'), type: type as 'branch' | 'tag' };
  for (const k of ['min-snapshots-to-keep', 'max-snapshot-age-ms', 'max-ref-age-ms'] as const) {
    const v = o.optLong(k);
    if (v !== undefined) ref[k] = Number(v);
  }
  return ref;
}

/**
 * Reads metadata JSON and checks the spec's cross-field rules. `source` (usually the file's location)
 * prefixes every error, which is an InvalidMetadataError naming the member and the offending value.
 */
export function parseTableMetadata(text: string, source = 'table metadata'): TableMetadata {
  let raw: unknown;
  try {
    raw = parseJson(text);
  } catch (error) {
    throw new InvalidMetadataError(`${source}: not valid JSON: ${(error as Error).message}`, { source });
  }
  const o = JsonObject.of(raw, '', source);
  const fail = (m: string): never => o.fail(m);
  const version = o.int('format-version');
  if (version !== 2)
    fail(`format-version ${version} is not supported; this writer reads and writes format version 2`);
  const m: TableMetadata = {
    'format-version': 2,
    'table-uuid': o.string('table-uuid'),
    location: o.string('location'),
    'last-sequence-number': o.long('last-sequence-number'),
    'last-updated-ms': o.millis('last-updated-ms'),
    'last-column-id': o.int('last-column-id'),
    schemas: o.objects('schemas').map(parseSchema),
    'current-schema-id': o.int('current-schema-id'),
    'partition-specs': o.objects('partition-specs').map((s) => ({
      'spec-id': s.int('spec-id'),
      fields: s.objects('fields').map((f) => ({
        'source-id': f.int('source-id'),
        'field-id': f.int('field-id'),
        name: f.string('name'),
        transform: f.string('transform'),
      })),
    })),
    'default-spec-id': o.int('default-spec-id'),
    'last-partition-id': o.int('last-partition-id'),
    properties: o.stringMap('properties'),
    snapshots: o.optObjects('snapshots').map(parseSnapshot),
    'snapshot-log': o.optObjects('snapshot-log').map((e) => ({
      'timestamp-ms': e.millis('timestamp-ms'),
      'snapshot-id': e.long('snapshot-id'),
    })),
    'metadata-log': o.optObjects('metadata-log').map((e) => ({
      'timestamp-ms': e.millis('timestamp-ms'),
      'metadata-file': e.string('metadata-file'),
    })),
    'sort-orders': o.objects('sort-orders').map((s) => ({
      'order-id': s.int('order-id'),
      fields: s.objects('fields').map((f) => ({
        transform: f.string('transform'),
        'source-id': f.int('source-id'),
        direction: f.string('direction') as SortField['direction'],
        'null-order': f.string('null-order') as SortField['null-order'],
      })),
    })),
    'default-sort-order-id': o.int('default-sort-order-id'),
    refs: {},
  };
  if (o.has('refs'))
    for (const [name, ref] of Object.entries(o.object('refs').raw))
      m.refs[name] = parseRef(JsonObject.of(ref, `refs.${name}`, source));
  // Writers that predate optional ids write -1 for "no current snapshot".
  const current = o.optLong('current-snapshot-id');
  if (current !== undefined && current !== -1n) m['current-snapshot-id'] = current;
  const extra = Object.fromEntries(Object.entries(o.raw).filter(([k]) => !KNOWN.has(k)));
  if (Object.keys(extra).length > 0) m.extra = extra;
  validateTableMetadata(m, source);
  return m;
}

/** The spec's cross-field rules; also run before every write so we never publish invalid metadata. */
export function validateTableMetadata(m: TableMetadata, source = 'table metadata'): void {
  const fail = (message: string): never => {
    throw new InvalidMetadataError(`${source}: ${message}`, { source });
  };
  if (m.location === '') fail('location must not be empty');
  unique(m.schemas, (s) => s['schema-id'], 'schema-id', fail);
  unique(m['partition-specs'], (s) => s['spec-id'], 'spec-id', fail);
  unique(m['sort-orders'], (s) => s['order-id'], 'order-id', fail);
  unique(m.snapshots, (s) => s['snapshot-id'], 'snapshot-id', fail);
  const schema = m.schemas.find((s) => s['schema-id'] === m['current-schema-id']);
  if (!schema)
    fail(
      `current-schema-id ${m['current-schema-id']} does not exist in schemas (ids: ${ids(m.schemas.map((s) => s['schema-id']))})`,
    );
  const spec = m['partition-specs'].find((s) => s['spec-id'] === m['default-spec-id']);
  if (!spec)
    fail(
      `default-spec-id ${m['default-spec-id']} does not exist in partition-specs (ids: ${ids(m['partition-specs'].map((s) => s['spec-id']))})`,
    );
  if (!m['sort-orders'].some((s) => s['order-id'] === m['default-sort-order-id']))
    fail(`default-sort-order-id ${m['default-sort-order-id']} does not exist in sort-orders`);
  const highestColumn = Math.max(0, ...m.schemas.map(maxFieldId));
  if (m['last-column-id'] < highestColumn)
    fail(
      `last-column-id ${m['last-column-id']} is lower than the highest assigned field id ${highestColumn}`,
    );
  const partitionIds = m['partition-specs'].flatMap((s) => s.fields.map((f) => f['field-id']));
  const highestPartition = Math.max(999, ...partitionIds);
  if (m['last-partition-id'] < highestPartition && partitionIds.length > 0)
    fail(
      `last-partition-id ${m['last-partition-id']} is lower than the highest partition field id ${highestPartition}`,
    );
  for (const f of spec?.fields ?? [])
    if (schema && !findField(schema, f['source-id']))
      fail(
        `partition field ${f.name} has source-id ${f['source-id']}, which is not a field of the current schema`,
      );
  const snapshotIds = new Set(m.snapshots.map((s) => s['snapshot-id']));
  for (const s of m.snapshots)
    if (s['sequence-number'] > m['last-sequence-number'])
      fail(
        `snapshot ${s['snapshot-id']} has sequence-number ${s['sequence-number']}, greater than last-sequence-number ${m['last-sequence-number']}`,
      );
  const current = m['current-snapshot-id'];
  if (current !== undefined && !snapshotIds.has(current))
    fail(`current-snapshot-id ${current} does not exist in snapshots`);
  for (const [name, ref] of Object.entries(m.refs))
    if (!snapshotIds.has(ref['snapshot-id']))
      fail(`ref ${name} points at snapshot-id ${ref['snapshot-id']}, which does not exist in snapshots`);
  const main = m.refs[MAIN_BRANCH]?.['snapshot-id'];
  if (main !== current)
    fail(`current-snapshot-id ${current ?? 'none'} differs from the main branch ref (${main ?? 'none'})`);
}

/** Serializes in the member order of the reference implementation; ids as exact JSON integers. */
export function serializeTableMetadata(m: TableMetadata): string {
  validateTableMetadata(m);
  const { extra, 'current-snapshot-id': current, ...rest } = m;
  const ordered = {
    'format-version': rest['format-version'],
    'table-uuid': rest['table-uuid'],
    location: rest.location,
    'last-sequence-number': rest['last-sequence-number'],
    'last-updated-ms': rest['last-updated-ms'],
    'last-column-id': rest['last-column-id'],
    'current-schema-id': rest['current-schema-id'],
    schemas: rest.schemas,
    'default-spec-id': rest['default-spec-id'],
    'partition-specs': rest['partition-specs'],
    'last-partition-id': rest['last-partition-id'],
    'default-sort-order-id': rest['default-sort-order-id'],
    'sort-orders': rest['sort-orders'],
    properties: rest.properties,
    // -1 rather than absent: readers written against older metadata expect the member.
    'current-snapshot-id': current ?? -1n,
    refs: rest.refs,
    snapshots: rest.snapshots,
    'snapshot-log': rest['snapshot-log'],
    'metadata-log': rest['metadata-log'],
    ...extra,
  };
  return stringifyJson(ordered, 2);
}

export function currentSchema(m: TableMetadata): Schema {
  return m.schemas.find((s) => s['schema-id'] === m['current-schema-id']) as Schema;
}

export function defaultSpec(m: TableMetadata): PartitionSpec {
  return m['partition-specs'].find((s) => s['spec-id'] === m['default-spec-id']) as PartitionSpec;
}

export function currentSnapshot(m: TableMetadata): Snapshot | undefined {
  const id = m['current-snapshot-id'];
  return id === undefined ? undefined : m.snapshots.find((s) => s['snapshot-id'] === id);
}

/** Snapshots from the current one back through its parents, newest first (expired parents end the walk). */
export function* ancestry(m: TableMetadata, from = m['current-snapshot-id']): Generator<Snapshot> {
  const byId = new Map(m.snapshots.map((s) => [s['snapshot-id'], s]));
  const seen = new Set<bigint>();
  for (let id = from; id !== undefined && !seen.has(id); ) {
    seen.add(id);
    const s = byId.get(id);
    if (!s) return;
    yield s;
    id = s['parent-snapshot-id'];
  }
}
