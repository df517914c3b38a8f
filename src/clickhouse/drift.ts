import type { ClickHouseClient } from '@clickhouse/client';
import type { TableConfig } from '../config/schema.ts';
import { type ChType, parseClickHouseType } from '../config/types.ts';
import { SchemaDriftError } from '../errors.ts';
import { queryRows } from './client.ts';
import { qualifiedName } from './sql.ts';

const DECIMAL_PRECISION: Record<string, number> = {
  Decimal32: 9,
  Decimal64: 18,
  Decimal128: 38,
  Decimal256: 76,
};

function canonical(t: ChType): string {
  if (t.name === 'LowCardinality') return canonical(t.args[0] as ChType);
  let { name, args } = t;
  if (name in DECIMAL_PRECISION) [name, args] = ['Decimal', [DECIMAL_PRECISION[name] as number, ...args]];
  // The timezone of a DateTime only changes how it prints: the stored instants are the same.
  if (name === 'DateTime') args = [];
  if (name === 'DateTime64') args = args.slice(0, 1);
  if (name === 'Boolean') name = 'Bool';
  if (name === 'Enum8' || name === 'Enum16') name = 'Enum';
  if (!args.length) return name;
  const rendered = args.map((a) =>
    typeof a === 'object' ? canonical(a) : typeof a === 'string' ? `'${a}'` : String(a),
  );
  return `${name}(${rendered.join(', ')})`;
}

/**
 * A type in a form where equal means "stages the same": LowCardinality, DateTime timezones and the
 * Decimal32/64/128 aliases are normalized away. Unparseable types compare as written.
 */
export function canonicalType(type: string): string {
  try {
    return canonical(parseClickHouseType(type));
  } catch {
    return type.replace(/\s+/g, '');
  }
}

export type ColumnDrift = {
  column: string;
  kind: 'missing' | 'added' | 'retyped';
  configured?: string;
  actual?: string;
};

export type SourceColumn = { name: string; type: string };

/** The ClickHouse table's columns as system.columns lists them, in table order. */
export async function sourceColumns(client: ClickHouseClient, table: TableConfig): Promise<SourceColumn[]> {
  const { database, table: name } = table.source;
  // Bound as parameters here, but a name that is not an identifier is refused as every other query does.
  qualifiedName(database, name);
  const actual = await queryRows<SourceColumn>(
    client,
    'SELECT name, type FROM system.columns WHERE database = {db:String} AND table = {t:String} ORDER BY position',
    { db: database, t: name },
  );
  if (actual.length === 0)
    throw new SchemaDriftError(
      `table ${table.name}: ClickHouse table ${database}.${name} does not exist (or has no columns); create it, or fix source.database/source.table in the table config`,
      { table: table.name, source: `${database}.${name}` },
    );
  return actual;
}

/** Differences between the configured columns and the ClickHouse table's. */
export function driftOf(table: TableConfig, actual: SourceColumn[]): ColumnDrift[] {
  const byName = new Map(actual.map((c) => [c.name, c.type]));
  const configured = new Set(table.columns.map((c) => c.name));
  const drift: ColumnDrift[] = [];
  for (const column of table.columns) {
    const type = byName.get(column.name);
    if (type === undefined) drift.push({ column: column.name, kind: 'missing', configured: column.type });
    else if (canonicalType(type) !== canonicalType(column.type))
      drift.push({ column: column.name, kind: 'retyped', configured: column.type, actual: type });
  }
  for (const c of actual)
    if (!configured.has(c.name)) drift.push({ column: c.name, kind: 'added', actual: c.type });
  return drift;
}

/** Differences between the configured columns and the ClickHouse table (system.columns). */
export async function detectDrift(client: ClickHouseClient, table: TableConfig): Promise<ColumnDrift[]> {
  return driftOf(table, await sourceColumns(client, table));
}

type ConfiguredColumn = TableConfig['columns'][number];
export type SuggestedColumn = Omit<ConfiguredColumn, 'required'> & { required?: boolean };

/** A column as it is written in a config file: defaults left out. */
export function columnEntry(c: SuggestedColumn): SuggestedColumn {
  return {
    name: c.name,
    type: c.type,
    ...(c.required ? { required: true } : {}),
    ...(c.iceberg ? { iceberg: c.iceberg } : {}),
    ...(c.renamedFrom ? { renamedFrom: c.renamedFrom } : {}),
  };
}

/**
 * The table's `columns` as they must be to match ClickHouse now, in ClickHouse's order: configured
 * columns keep their settings with ClickHouse's type, new ones come in with theirs, gone ones go.
 */
export function suggestedColumns(table: TableConfig, actual: SourceColumn[]): SuggestedColumn[] {
  return actual.map((a) => {
    const configured = table.columns.find((c) => c.name === a.name);
    if (!configured) return { name: a.name, type: a.type };
    return canonicalType(configured.type) === canonicalType(a.type)
      ? columnEntry(configured)
      : columnEntry({ ...configured, type: a.type });
  });
}

/** The config change that matches ClickHouse, as diff lines of the column list (`+` add, `-` remove, `~` change). */
export function columnDiff(table: TableConfig, actual: SourceColumn[]): string[] {
  const show = (c: SuggestedColumn) => JSON.stringify(columnEntry(c));
  const lines: string[] = [];
  for (const d of driftOf(table, actual)) {
    const configured = table.columns.find((c) => c.name === d.column);
    if (d.kind === 'added') lines.push(`+ ${show({ name: d.column, type: d.actual as string })}`);
    else if (d.kind === 'missing' && configured) lines.push(`- ${show(configured)}`);
    else if (configured)
      lines.push(`~ ${show({ ...configured, type: d.actual as string })} (was ${d.configured})`);
  }
  return lines;
}

function describe(d: ColumnDrift, source: string): string {
  if (d.kind === 'missing')
    return `column ${d.column} (configured as ${d.configured}) is missing from ClickHouse ${source}: restore it there, or remove it from the table config's columns`;
  if (d.kind === 'added')
    return `column ${d.column} (${d.actual}) exists in ClickHouse ${source} but not in the table config, so it would not be offloaded: add it to the table config's columns`;
  return `column ${d.column} is ${d.actual} in ClickHouse ${source} but configured as ${d.configured}: if the change is intended, set the configured type to ${d.actual} (the Iceberg column must be able to widen to it); otherwise restore the ClickHouse column`;
}

/**
 * Refuses to offload a table whose ClickHouse columns no longer match the config, with the config
 * change that would match them (a rename shows as one column gone and one added: it is never guessed).
 */
export async function assertNoDrift(client: ClickHouseClient, table: TableConfig): Promise<void> {
  const actual = await sourceColumns(client, table);
  const drift = driftOf(table, actual);
  if (drift.length === 0) return;
  const source = `${table.source.database}.${table.source.table}`;
  const renamed = drift.some((d) => d.kind === 'missing') && drift.some((d) => d.kind === 'added');
  throw new SchemaDriftError(
    [
      `table ${table.name}: schema drift, nothing offloaded.`,
      ...drift.map((d) => `- ${describe(d, source)}`),
      `The config change that matches ClickHouse now (columns of ${table.name}; k2-offload config suggest prints the whole config):`,
      ...columnDiff(table, actual).map((line) => `  ${line}`),
      ...(renamed
        ? [
            'If a column was renamed, give the new entry "renamedFrom": "<old name>" so Iceberg keeps its field id.',
          ]
        : []),
    ].join('\n'),
    { table: table.name, source, drift },
  );
}
