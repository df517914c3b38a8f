/**
 * The baseline side of the benchmark, run as a child process of its own: ClickHouse (the same chDB, on
 * the same data) writing exactly the rows the offload moved to one Parquet file by itself, with its
 * default settings and its allocator as shipped (sides.ts); only the compression is set to ours (zstd).
 * Opening the engine is not timed; the statement alone is. Prints `{ rows, ms, cpuMs }` as JSON.
 *
 *   tsx bench/export.ts --home <.k2 dir> --table <config table> --until <ISO> --out <file.parquet>
 */
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { openClickHouse, queryRows } from '../src/clickhouse/client.ts';
import { ident, instantLiteral, qualifiedName, stringLiteral } from '../src/clickhouse/sql.ts';
import { defaultConfig, tableByName } from '../src/config/load.ts';

const { values } = parseArgs({
  options: {
    home: { type: 'string' },
    table: { type: 'string' },
    until: { type: 'string' },
    out: { type: 'string' },
  },
});

async function main() {
  const table = tableByName(defaultConfig(), values.table as string);
  const clickhouse = openClickHouse({ dataDir: join(values.home as string, 'chdb') });
  try {
    await queryRows(clickhouse, 'SELECT 1');
    const source = qualifiedName(table.source.database, table.source.table);
    const cursor = ident(table.cursor.column, 'cursor column');
    const out = stringLiteral(values.out as string);
    const cpu = process.cpuUsage();
    const started = performance.now();
    await clickhouse.command({
      query: `INSERT INTO FUNCTION file(${out}, 'Parquet')
        SELECT * FROM ${source} WHERE ${cursor} < ${instantLiteral(values.until as string)}
        SETTINGS output_format_parquet_compression_method = 'zstd'`,
    });
    const ms = performance.now() - started;
    const used = process.cpuUsage(cpu);
    const [written] = await queryRows<{ rows: string }>(
      clickhouse,
      `SELECT sum(num_rows) AS rows FROM file(${out}, 'ParquetMetadata')`,
    );
    const result = { rows: Number(written?.rows), ms, cpuMs: (used.user + used.system) / 1000 };
    console.log(JSON.stringify(result));
  } finally {
    await clickhouse.close();
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
