import type { Evolution, SchemaChange, WantedTable } from './evolve.ts';
import { currentSchema, defaultSpec, type PartitionSpec, type TableMetadata } from './metadata.ts';
import { buildPartitionSpec } from './new-table.ts';

const specShape = (s: PartitionSpec) => JSON.stringify(s.fields.map((f) => [f['source-id'], f.transform]));

/** A partitioning that differs from the default spec becomes the default: an earlier spec, or a new one. */
export function evolvePartitionSpec(
  metadata: TableMetadata,
  wanted: WantedTable,
  changes: SchemaChange[],
): Evolution {
  const schema = currentSchema(metadata);
  const specs = metadata['partition-specs'];
  const known = specs.flatMap((s) => s.fields);
  let lastPartitionId = metadata['last-partition-id'];
  const probe = buildPartitionSpec(wanted.name, wanted.partitionSpec, schema, -1, () => 0);
  if (specShape(probe) === specShape(defaultSpec(metadata))) return { changes, metadata };
  const earlier = specs.find((s) => specShape(s) === specShape(probe));
  const spec =
    earlier ??
    buildPartitionSpec(
      wanted.name,
      wanted.partitionSpec,
      schema,
      Math.max(...specs.map((s) => s['spec-id'])) + 1,
      // A field that existed in an earlier spec keeps its id, as Iceberg's UpdatePartitionSpec does.
      (sourceId, transform) =>
        known.find((f) => f['source-id'] === sourceId && f.transform === transform)?.['field-id'] ??
        ++lastPartitionId,
    );
  const describe = (s: PartitionSpec) =>
    s.fields
      .map((f) => `${f.transform}(${schema.fields.find((c) => c.id === f['source-id'])?.name})`)
      .join(', ') || 'unpartitioned';
  changes.push({
    kind: 'partition-spec',
    detail: `partition new data by ${describe(spec)} (spec id ${spec['spec-id']}; was ${describe(defaultSpec(metadata))})`,
  });
  return {
    changes,
    metadata: {
      ...metadata,
      'partition-specs': earlier ? specs : [...specs, spec],
      'default-spec-id': spec['spec-id'],
      'last-partition-id': lastPartitionId,
    },
  };
}
