import type { ObjectStore } from '../../src/iceberg/object-store.ts';
import { readWithAvsc } from './avsc-reader.ts';

/**
 * A check of table metadata against the spec's rules for evolved tables that shares no code with our
 * writer or parser: the metadata JSON read with JSON.parse (ids compared as written), manifest lists
 * and manifests read with avsc. Returns the problems found, in words; an empty list is a pass.
 */
type Field = { id: number; name: string; required: boolean; type: unknown };
type RawSchema = { 'schema-id': number; fields: Field[] };
type RawSpec = {
  'spec-id': number;
  fields: Array<{ 'source-id': number; 'field-id': number; name: string }>;
};

async function readAvro(bytes: Uint8Array) {
  const { records, meta } = await readWithAvsc(bytes);
  return { records, header: Object.fromEntries(Object.entries(meta).map(([k, v]) => [k, v.toString()])) };
}

function ids(type: unknown): number[] {
  if (typeof type !== 'object' || type === null) return [];
  const t = type as Record<string, unknown>;
  if (t.type === 'struct') return (t.fields as Field[]).flatMap((f) => [f.id, ...ids(f.type)]);
  if (t.type === 'list') return [t['element-id'] as number, ...ids(t.element)];
  if (t.type === 'map')
    return [t['key-id'] as number, t['value-id'] as number, ...ids(t.key), ...ids(t.value)];
  return [];
}

const increasing = (xs: number[]) => xs.every((x, i) => i === 0 || x > (xs[i - 1] as number));

export async function specProblems(store: ObjectStore, metadataLocation: string): Promise<string[]> {
  const problems: string[] = [];
  const m = JSON.parse(new TextDecoder().decode(await store.get(metadataLocation)));
  const schemas = m.schemas as RawSchema[];
  const specs = m['partition-specs'] as RawSpec[];
  const schemaIds = schemas.map((s) => s['schema-id']);
  if (!increasing(schemaIds)) problems.push(`schema ids not increasing: ${schemaIds}`);
  if (!schemaIds.includes(m['current-schema-id']))
    problems.push(`current-schema-id ${m['current-schema-id']} not in schemas`);
  for (const s of schemas) {
    const all = ids({ type: 'struct', fields: s.fields });
    if (new Set(all).size !== all.length) problems.push(`schema ${s['schema-id']} repeats a field id`);
    if (Math.max(0, ...all) > m['last-column-id'])
      problems.push(`schema ${s['schema-id']} has field ids above last-column-id ${m['last-column-id']}`);
  }
  // A field id means one column for the table's whole life: its type may only widen, never change family.
  const byId = new Map<number, unknown>();
  for (const s of schemas)
    for (const f of s.fields) {
      const seen = byId.get(f.id);
      if (seen !== undefined && typeof seen === 'string' && typeof f.type === 'string' && seen !== f.type) {
        const widened =
          (seen === 'int' && f.type === 'long') ||
          (seen === 'float' && f.type === 'double') ||
          (/^decimal/.test(seen) && /^decimal/.test(f.type));
        if (!widened) problems.push(`field id ${f.id} changes type from ${seen} to ${f.type}`);
      }
      byId.set(f.id, f.type);
    }
  const specIds = specs.map((s) => s['spec-id']);
  if (!increasing(specIds)) problems.push(`spec ids not increasing: ${specIds}`);
  if (!specIds.includes(m['default-spec-id']))
    problems.push(`default-spec-id ${m['default-spec-id']} not in partition-specs`);
  const partitionIds = specs.flatMap((s) => s.fields.map((f) => f['field-id']));
  if (Math.max(999, ...partitionIds) > m['last-partition-id'])
    problems.push(`partition field ids above last-partition-id ${m['last-partition-id']}`);
  const mapping = JSON.parse(m.properties?.['schema.name-mapping.default'] ?? '[]') as Array<{
    'field-id': number;
  }>;
  const current = schemas.find((s) => s['schema-id'] === m['current-schema-id']);
  for (const f of current?.fields ?? [])
    if (!mapping.some((e) => e['field-id'] === f.id))
      problems.push(`name mapping lacks field id ${f.id} (${f.name})`);

  const head = (m.snapshots as Array<Record<string, unknown>>).find(
    (s) => String(s['snapshot-id']) === String(m['current-snapshot-id']),
  );
  for (const s of m.snapshots as Array<Record<string, unknown>>)
    if (s['schema-id'] !== undefined && !schemaIds.includes(s['schema-id'] as number))
      problems.push(`snapshot ${s['snapshot-id']} names schema ${s['schema-id']}, not in schemas`);
  if (!head) return problems;
  const list = await readAvro(await store.get(head['manifest-list'] as string));
  for (const entry of list.records) {
    const path = entry.manifest_path as string;
    const { header } = await readAvro(await store.get(path));
    const schemaId = Number(header['schema-id']);
    const schema = schemas.find((s) => s['schema-id'] === schemaId);
    if (!schema) problems.push(`manifest ${path} names schema ${header['schema-id']}, not in schemas`);
    else if (JSON.stringify(JSON.parse(header.schema ?? '{}').fields) !== JSON.stringify(schema.fields))
      problems.push(`manifest ${path}: its schema differs from schema ${schemaId} of the table`);
    const spec = specs.find((s) => s['spec-id'] === Number(header['partition-spec-id']));
    if (!spec || spec['spec-id'] !== entry.partition_spec_id)
      problems.push(
        `manifest ${path}: partition-spec-id ${header['partition-spec-id']} vs list ${entry.partition_spec_id}`,
      );
    else if (JSON.stringify(JSON.parse(header['partition-spec'] ?? '[]')) !== JSON.stringify(spec.fields))
      problems.push(`manifest ${path}: its partition spec differs from spec ${spec['spec-id']}`);
  }
  return problems;
}
