import { parseArgs } from 'node:util';
import { InputError } from '../errors.ts';
import { parseInstant } from '../plan/time.ts';

/** One option of a command, as node:util parseArgs takes it, plus what `--help` prints. */
export type OptionSpec = {
  type: 'string' | 'boolean';
  short?: string;
  /** Placeholder of the value in help (`--table NAME`). */
  value?: string;
  description: string;
};

export type OptionSpecs = Record<string, OptionSpec>;

/** Options every command takes. */
export const COMMON_OPTIONS: OptionSpecs = {
  config: {
    type: 'string',
    value: 'PATH',
    description: 'table config file (JSON); default: the ten hot-tier tables',
  },
  json: { type: 'boolean', description: 'print one JSON document for scripts instead of text' },
  wide: { type: 'boolean', description: 'print every column in full, however wide the terminal' },
  'log-format': {
    type: 'string',
    value: 'FMT',
    description: 'events on stderr: text (progress on a terminal) or json, one line each (or K2_LOG)',
  },
  help: { type: 'boolean', short: 'h', description: 'show this help' },
};

export type Parsed = {
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
};

/** Parses argv against the command's options; a wrong option or value is an InputError (exit code 2). */
export function parseCommandArgs(
  command: string,
  argv: string[],
  options: OptionSpecs,
  maxPositionals = 0,
): Parsed {
  const all = { ...options, ...COMMON_OPTIONS };
  const config = Object.fromEntries(
    Object.entries(all).map(([name, o]) => [name, { type: o.type, ...(o.short ? { short: o.short } : {}) }]),
  );
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: joinNegativeValues(argv, all),
      options: config,
      allowPositionals: true,
      strict: true,
    });
  } catch (error) {
    // parseArgs says e.g. "Unknown option '--tabel'"; keep its words, add where to look.
    const message = (error as Error).message.replace(/\. To specify a positional argument.*$/s, '');
    const unknown = /^Unknown option '--([^']+)'/.exec(message)?.[1];
    const near = unknown ? closestOption(unknown, Object.keys(all)) : undefined;
    const hint = near ? ` (did you mean --${near}?)` : '';
    throw new InputError(`${message}${hint}; see k2-offload ${command} --help`, { command });
  }
  if (parsed.positionals.length > maxPositionals)
    throw new InputError(
      `unexpected argument ${JSON.stringify(parsed.positionals[maxPositionals])}; see k2-offload ${command} --help`,
      { command, value: parsed.positionals[maxPositionals] },
    );
  return { values: parsed.values as Parsed['values'], positionals: parsed.positionals };
}

/**
 * `--hours -3` as `--hours=-3`: a value that looks like a negative number belongs to the string option
 * before it (parseArgs would call it ambiguous), so the option's own range check can name it.
 */
function joinNegativeValues(argv: string[], options: OptionSpecs): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    const next = argv[i + 1];
    const name = arg.startsWith('--') ? arg.slice(2) : undefined;
    if (name && options[name]?.type === 'string' && next !== undefined && /^-\d/.test(next)) {
      out.push(`${arg}=${next}`);
      i++;
    } else out.push(arg);
  }
  return out;
}

/** The option an unknown one most likely meant: a prefix of the other either way, or one edit away. */
export function closestOption(unknown: string, names: string[]): string | undefined {
  const scored = names
    .map((name) => ({ name, distance: editDistance(unknown, name) }))
    .filter(({ name, distance }) => distance <= 2 || name.startsWith(unknown) || unknown.startsWith(name))
    .sort((a, b) => a.distance - b.distance);
  return scored[0]?.name;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++)
      current[j] = Math.min(
        (previous[j] as number) + 1,
        (current[j - 1] as number) + 1,
        (previous[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    previous = current;
  }
  return previous[b.length] as number;
}

export const stringOpt = (p: Parsed, name: string): string | undefined => {
  const v = p.values[name];
  return typeof v === 'string' ? v : undefined;
};

export const flag = (p: Parsed, name: string): boolean => p.values[name] === true;

export function requireOpt(p: Parsed, command: string, name: string, what: string): string {
  const v = stringOpt(p, name);
  if (v === undefined || v.trim() === '')
    throw new InputError(`--${name} is required (${what}); see k2-offload ${command} --help`, {
      option: name,
    });
  return v.trim();
}

/** `--tables a,b` -> ['a', 'b']; empty entries are refused. */
export function listOpt(p: Parsed, name: string): string[] | undefined {
  const v = stringOpt(p, name);
  if (v === undefined) return undefined;
  const items = v.split(',').map((s) => s.trim());
  if (items.some((s) => s === ''))
    throw new InputError(
      `--${name} ${JSON.stringify(v)}: give names separated by commas, without empty entries`,
      {
        option: name,
        value: v,
      },
    );
  return items;
}

/** A whole number option within bounds. */
export function intOpt(p: Parsed, name: string, fallback: number, min: number, max: number): number {
  const v = stringOpt(p, name);
  if (v === undefined) return fallback;
  const n = Number(v.replace(/_/g, ''));
  if (!Number.isInteger(n) || n < min || n > max)
    throw new InputError(`--${name} ${JSON.stringify(v)}: must be a whole number from ${min} to ${max}`, {
      option: name,
      value: v,
    });
  return n;
}

export function numberOpt(p: Parsed, name: string, fallback: number, min: number, max: number): number {
  const v = stringOpt(p, name);
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isFinite(n) || n < min || n > max)
    throw new InputError(`--${name} ${JSON.stringify(v)}: must be a number from ${min} to ${max}`, {
      option: name,
      value: v,
    });
  return n;
}

/**
 * An instant option in ISO 8601 with a zone; `notAfter` refuses instants later than it (now), saying
 * by how much, since an `--until` in the future would plan windows whose rows are not final.
 */
export function instantOpt(p: Parsed, name: string, notAfter?: Date): string | undefined {
  const v = stringOpt(p, name);
  if (v === undefined) return undefined;
  const ms = parseInstant(v, `--${name}`);
  if (notAfter && ms > notAfter.getTime())
    throw new InputError(
      `--${name} ${v} is in the future (now is ${notAfter.toISOString()}); rows after now are not final yet: give an instant in the past, or leave --${name} out`,
      { option: name, value: v },
    );
  return new Date(ms).toISOString();
}

/** Help text of one command: usage line, what it does, its options, the common ones last. */
export function helpText(command: string, usage: string, description: string, options: OptionSpecs): string {
  const rows = Object.entries({ ...options, ...COMMON_OPTIONS }).map(([name, o]) => {
    const left = `${o.short ? `-${o.short}, ` : '    '}--${name}${o.value ? ` ${o.value}` : ''}`;
    return [left, o.description] as const;
  });
  const width = Math.max(...rows.map(([l]) => l.length));
  return [
    `Usage: k2-offload ${command} ${usage}`.trimEnd(),
    '',
    description,
    '',
    'Options:',
    ...rows.map(([l, d]) => `  ${l.padEnd(width)}  ${d}`),
  ].join('\n');
}
