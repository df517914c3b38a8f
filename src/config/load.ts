import { readFile } from 'node:fs/promises';
import { parse as parseLossless } from 'lossless-json';
import type { z } from 'zod';
import { ConfigError, InputError } from '../errors.ts';
import { DEFAULT_TABLES } from './defaults.ts';
import { LAYERS, type OffloadConfig, offloadConfigSchema, type TableConfig } from './schema.ts';
import { mapColumn } from './types.ts';

const AGGREGATE =
  /^(sum|min|max|any|anyLast|argMin|argMax)\(([A-Za-z_][A-Za-z0-9_]*)(?:, ?([A-Za-z_][A-Za-z0-9_]*))?\)$/;

function describeIssues(error: z.ZodError, raw: unknown, source: string): string {
  return error.issues
    .map((issue) => {
      // `tables.0.name` says little in a file of ten tables: name the table the issue is in.
      const [head, index] = issue.path;
      const tables = (raw as { tables?: unknown } | null)?.tables;
      const table =
        head === 'tables' && typeof index === 'number' && Array.isArray(tables) ? tables[index] : undefined;
      const tableName = (table as { name?: unknown } | undefined)?.name;
      const named = typeof tableName === 'string' ? ` (table ${JSON.stringify(tableName)})` : '';
      const path =
        (issue.path.map(String).join('.') || '(root)') +
        (issue.path.length > 1 && issue.path[2] !== 'name' ? named : '');
      const keys =
        'keys' in issue && Array.isArray(issue.keys) && !issue.keys.every((k) => issue.message.includes(k))
          ? ` (${issue.keys.join(', ')})`
          : '';
      // Zod reports the input only on request; the message is far more useful with the offending value.
      const got =
        issue.code !== 'unrecognized_keys' && issue.input !== undefined && typeof issue.input !== 'object'
          ? `, got ${JSON.stringify(issue.input)}`
          : '';
      return `${source}: ${path}: ${issue.message}${keys}${got}`;
    })
    .join('\n');
}

/** Rules that span fields: every referenced column exists, dependencies point to earlier layers. */
function checkTable(table: TableConfig, byName: Map<string, TableConfig>): void {
  const where = `table ${table.name}`;
  const columns = new Map(table.columns.map((c) => [c.name, c]));
  if (columns.size !== table.columns.length)
    throw new ConfigError(`${where}: columns: a column name appears twice`, { table: table.name });
  for (const column of table.columns) {
    try {
      mapColumn(column);
    } catch (error) {
      // types.ts names the column and type; add the table so the message points at one place in the file.
      if (error instanceof ConfigError)
        throw new ConfigError(`${where}: ${error.message}`, { table: table.name, ...error.details });
      throw error;
    }
  }
  const need = (name: string, field: string) => {
    if (!columns.has(name))
      throw new ConfigError(`${where}: ${field}: column ${JSON.stringify(name)} is not in columns`, {
        table: table.name,
        field,
        value: name,
      });
  };
  for (const column of table.columns) {
    const from = column.renamedFrom;
    if (from !== undefined && (columns.has(from) || table.droppedColumns.includes(from)))
      throw new ConfigError(
        `${where}: columns.${column.name}.renamedFrom: ${from} is still a column${columns.has(from) ? '' : ' (in droppedColumns)'}; a renamed column's old name cannot be used again in the same config`,
        { table: table.name, field: `columns.${column.name}.renamedFrom`, value: from },
      );
  }
  for (const name of table.droppedColumns)
    if (columns.has(name))
      throw new ConfigError(
        `${where}: droppedColumns: ${name} is also in columns; remove it from one of them`,
        { table: table.name, field: 'droppedColumns', value: name },
      );
  need(table.cursor.column, 'cursor.column');
  if (table.ttlColumn) {
    need(table.ttlColumn, 'ttlColumn');
    const type = table.columns.find((c) => c.name === table.ttlColumn)?.type ?? '';
    if (!/^(Date|Date32|DateTime|DateTime64)\b/.test(type))
      throw new ConfigError(
        `${where}: ttlColumn: column ${table.ttlColumn} is ${type}; the TTL column must be a Date or DateTime`,
        { table: table.name, field: 'ttlColumn', value: table.ttlColumn },
      );
  }
  for (const k of table.naturalKey) need(k, 'naturalKey');
  for (const p of table.partitionSpec) need(p.column, 'partitionSpec.column');
  if (table.cursor.kind === 'closed_bucket') {
    const { intervalSeconds } = table.cursor;
    if (table.maxWindowSeconds % intervalSeconds !== 0)
      throw new ConfigError(
        `${where}: maxWindowSeconds ${table.maxWindowSeconds} must be a multiple of the bucket interval ${intervalSeconds}`,
        {
          table: table.name,
          field: 'maxWindowSeconds',
          value: table.maxWindowSeconds,
        },
      );
  }
  if (table.reaggregate) {
    for (const g of table.reaggregate.groupBy) need(g, 'reaggregate.groupBy');
    for (const [output, expression] of Object.entries(table.reaggregate.columns)) {
      need(output, 'reaggregate.columns');
      const m = AGGREGATE.exec(expression);
      if (!m)
        throw new ConfigError(
          `${where}: reaggregate.columns.${output}: ${JSON.stringify(expression)} must be fn(column) or fn(column, column) with fn one of sum, min, max, any, anyLast, argMin, argMax`,
          { table: table.name, field: `reaggregate.columns.${output}`, value: expression },
        );
      need(m[2] as string, `reaggregate.columns.${output}`);
      if (m[3]) need(m[3], `reaggregate.columns.${output}`);
    }
    const covered = new Set([...table.reaggregate.groupBy, ...Object.keys(table.reaggregate.columns)]);
    const missing = table.columns.filter((c) => !covered.has(c.name)).map((c) => c.name);
    if (missing.length)
      throw new ConfigError(
        `${where}: reaggregate: columns ${missing.join(', ')} are neither grouped nor aggregated`,
        { table: table.name },
      );
  }
  for (const dep of table.dependsOn) {
    const upstream = byName.get(dep);
    if (!upstream)
      throw new ConfigError(`${where}: dependsOn: unknown table ${JSON.stringify(dep)}`, {
        table: table.name,
        field: 'dependsOn',
        value: dep,
      });
    if (LAYERS.indexOf(upstream.layer) >= LAYERS.indexOf(table.layer))
      throw new ConfigError(
        `${where}: dependsOn: ${dep} is in layer ${upstream.layer}, which does not come before ${table.layer}`,
        {
          table: table.name,
          field: 'dependsOn',
          value: dep,
        },
      );
  }
}

/** Validates raw config (from a file or defaults); `source` names it in messages. */
export function parseConfig(raw: unknown, source = 'config'): OffloadConfig {
  const parsed = offloadConfigSchema.safeParse(raw, { reportInput: true });
  if (!parsed.success) throw new ConfigError(describeIssues(parsed.error, raw, source), { source });
  const byName = new Map<string, TableConfig>();
  const targets = new Set<string>();
  for (const table of parsed.data.tables) {
    if (byName.has(table.name))
      throw new ConfigError(`${source}: table ${table.name} is configured twice`, { table: table.name });
    const target = `${table.target.namespace}.${table.target.name}`;
    if (targets.has(target))
      throw new ConfigError(`${source}: Iceberg table ${target} is the target of two tables`, {
        table: table.name,
      });
    byName.set(table.name, table);
    targets.add(target);
  }
  for (const table of parsed.data.tables) checkTable(table, byName);
  const order = (t: TableConfig) => LAYERS.indexOf(t.layer);
  return { tables: [...parsed.data.tables].sort((a, b) => order(a) - order(b)) };
}

export function defaultConfig(): OffloadConfig {
  return parseConfig({ tables: DEFAULT_TABLES }, 'default tables');
}

/** Loads a JSON table config file, or the default ten tables when no path is given. */
export async function loadConfig(path?: string): Promise<OffloadConfig> {
  if (!path) return defaultConfig();
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new ConfigError(`cannot read table config ${path}: ${(error as Error).message}`, { path });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new ConfigError(`table config ${path} is not valid JSON: ${jsonSyntaxError(text)}`, { path });
  }
  return parseConfig(raw, path);
}

/**
 * What is wrong with a JSON text, at which line and column. Node's own parser often names no position,
 * lossless-json's always gives the offset.
 */
export function jsonSyntaxError(text: string): string {
  try {
    parseLossless(text);
    return 'unknown syntax error';
  } catch (error) {
    const message = (error as Error).message;
    const offset = /at position (\d+)$/.exec(message)?.[1];
    if (offset === undefined) return message;
    const before = text.slice(0, Number(offset));
    const line = before.split('\n').length;
    const column = Number(offset) - before.lastIndexOf('\n');
    return `${message.replace(/ at position \d+$/, '')} at line ${line}, column ${column}`;
  }
}

/** Resolves CLI/event table names against config; an unknown name is refused with the known ones. */
export function selectTables(config: OffloadConfig, names?: readonly string[]): TableConfig[] {
  if (!names || names.length === 0) return config.tables;
  const known = new Map(config.tables.map((t) => [t.name, t]));
  return names.map((name) => {
    const table = known.get(name);
    if (!table)
      throw new InputError(
        `unknown table ${JSON.stringify(name)}; configured tables: ${[...known.keys()].join(', ')}`,
        { table: name },
      );
    return table;
  });
}

export function tableByName(config: OffloadConfig, name: string): TableConfig {
  return selectTables(config, [name])[0] as TableConfig;
}
