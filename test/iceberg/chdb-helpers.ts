import { mkdirSync } from 'node:fs';
import { type ClickHouseClient, createClient } from '@clickhouse/client';
import { createChdbConnection } from 'chdb/connection';
import type { TableConfig } from '../../src/config/schema.ts';
import { mapColumn } from '../../src/config/types.ts';

type ClientConnection = NonNullable<NonNullable<Parameters<typeof createClient>[0]>['connection']>;

/**
 * chDB as the independent Iceberg reader. Its `icebergLocal` only reads below the session's user files
 * directory, which is the working directory: tests run in their own process (vitest forks) and move
 * into their temp directory before opening the session. One session per process.
 */
export function openChdb(dir: string): ClickHouseClient {
  mkdirSync(dir, { recursive: true });
  process.chdir(dir);
  // chdb types its connection against @clickhouse/client-common, the client against its own copy.
  const connection = createChdbConnection({ path: `${dir}/chdb` }) as unknown as ClientConnection;
  return createClient({ connection });
}

export async function rows<T = Record<string, unknown>>(
  client: ClickHouseClient,
  query: string,
): Promise<T[]> {
  const result = await client.query({ query, format: 'JSONEachRow' });
  return (await result.json()) as T[];
}

/** SELECT list casting generator expressions to the staging types the stager writes. */
export function stagingSelect(table: TableConfig, exprs: Record<string, string>): string {
  return table.columns
    .map((c) => {
      const expr = exprs[c.name];
      if (expr === undefined) throw new Error(`no generator expression for ${table.name}.${c.name}`);
      return `CAST(${expr} AS ${mapColumn(c).stagingType}) AS \`${c.name}\``;
    })
    .join(', ');
}

/** Writes Parquet with ClickHouse itself, as the stager does. */
export async function writeParquet(client: ClickHouseClient, path: string, select: string, from: string) {
  await client.command({
    query: `INSERT INTO FUNCTION file('${path}', 'Parquet') SELECT ${select} FROM ${from}
            SETTINGS engine_file_truncate_on_insert = 1, output_format_parquet_compression_method = 'zstd'`,
  });
}

/** Aggregates users check a copy by: count, and per column min/max/sum, lengths of arrays and maps. */
export function profileQuery(table: TableConfig, from: string, settings = ''): string {
  const parts = ['toString(count()) AS rows'];
  for (const c of table.columns) {
    const t = mapColumn(c).stagingType;
    const q = `\`${c.name}\``;
    if (/^(Array|Map)\(/.test(t)) parts.push(`toString(sum(length(${q}))) AS ${c.name}_len`);
    else {
      parts.push(`toString(min(${q})) AS ${c.name}_min`, `toString(max(${q})) AS ${c.name}_max`);
      if (/Int|Decimal|Float/.test(t)) parts.push(`toString(sum(${q})) AS ${c.name}_sum`);
      if (t.startsWith('Nullable')) parts.push(`toString(count(${q})) AS ${c.name}_count`);
    }
  }
  return `SELECT ${parts.join(', ')} FROM ${from} ${settings}`;
}
