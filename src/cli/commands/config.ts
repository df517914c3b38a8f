import { columnDiff, sourceColumns, suggestedColumns } from '../../clickhouse/drift.ts';
import { loadConfig, selectTables } from '../../config/load.ts';
import { InputError } from '../../errors.ts';
import { listOpt } from '../args.ts';
import { type Command, withRuntime } from '../context.ts';

export type ConfigSuggestion = {
  config: { tables: unknown[] };
  /** Per table whose columns differ from ClickHouse: the change, as diff lines of the column list. */
  changes: Record<string, string[]>;
};

const ACTIONS = ['suggest'] as const;

export const configCommand: Command = {
  name: 'config',
  summary: 'suggest: print a table config whose columns match the ClickHouse tables as they are now',
  usage: 'suggest [--tables A,B] [--config PATH] [--json]',
  description: [
    "suggest  reads each table's columns from ClickHouse (system.columns) and prints the table config",
    "         with those columns, in ClickHouse's order: configured columns keep their settings with",
    "         ClickHouse's type, new ones are added, gone ones removed. stdout is the config alone",
    '         (k2-offload config suggest > tables.json); stderr lists the changes per table. A rename shows',
    '         as a column gone and one added: give the new one "renamedFrom" yourself, it is never guessed.',
    '         Nothing is written. --json prints {config, changes}.',
  ].join('\n'),
  options: {
    tables: {
      type: 'string',
      value: 'A,B',
      description: 'only these tables (comma-separated); default: all',
    },
  },
  maxPositionals: 1,
  actions: ACTIONS,
  async run(args, ctx) {
    const action = args.positionals[0];
    if (action !== 'suggest')
      throw new InputError(
        `${action ? `unknown action ${JSON.stringify(action)}` : 'an action is required'}; use suggest (see k2-offload config --help)`,
        { value: action },
      );
    const config = await loadConfig(ctx.configPath);
    const selected = new Set(selectTables(config, listOpt(args, 'tables')).map((t) => t.name));
    const suggestion = await withRuntime(ctx, async (rt): Promise<ConfigSuggestion> => {
      const changes: Record<string, string[]> = {};
      const tables = [];
      for (const table of config.tables) {
        if (!selected.has(table.name)) {
          tables.push(table);
          continue;
        }
        const actual = await sourceColumns(rt.clickhouse, table);
        const diff = columnDiff(table, actual);
        if (diff.length > 0) changes[table.name] = diff;
        tables.push({ ...table, columns: suggestedColumns(table, actual) });
      }
      return { config: { tables }, changes };
    });
    ctx.emit(suggestion);
    if (!ctx.json) {
      ctx.io.stdout.write(`${JSON.stringify(suggestion.config, null, 2)}\n`);
      const changed = Object.entries(suggestion.changes);
      ctx.io.stderr.write(
        changed.length === 0
          ? 'Every selected table already matches ClickHouse.\n'
          : changed.map(([name, lines]) => `${name}:\n${lines.map((l) => `  ${l}`).join('\n')}\n`).join(''),
      );
    }
    return 0;
  },
};
