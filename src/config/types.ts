import { ConfigError } from '../errors.ts';

/** A parsed ClickHouse type: `Decimal(18, 8)` -> { name: 'Decimal', args: [18, 8] }. */
export type ChType = { name: string; args: Array<ChType | number | string> };

/** An Iceberg type before field ids are assigned (the Iceberg module numbers the fields). */
export type IcebergType =
  | { kind: 'primitive'; type: string }
  | { kind: 'list'; element: IcebergType; elementRequired: boolean }
  | { kind: 'map'; key: IcebergType; value: IcebergType; valueRequired: boolean };

/** What one ClickHouse column becomes: its Iceberg type, whether nullable, and the type staging casts to. */
export type ColumnMapping = { iceberg: IcebergType; optional: boolean; stagingType: string };

type Token = { kind: 'word' | 'number' | 'string' | 'punct'; text: string };

function tokenize(source: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < source.length) {
    const c = source[i] as string;
    if (/\s/.test(c)) i++;
    else if ('(),='.includes(c)) {
      tokens.push({ kind: 'punct', text: c });
      i++;
    } else if (c === "'") {
      let text = '';
      i++;
      while (i < source.length && source[i] !== "'") {
        if (source[i] === '\\') i++;
        text += source[i] ?? '';
        i++;
      }
      if (source[i] !== "'") throw new Error('unterminated string');
      i++;
      tokens.push({ kind: 'string', text });
    } else if (/[-0-9]/.test(c)) {
      const m = /^-?[0-9]+/.exec(source.slice(i));
      if (!m) throw new Error(`unexpected '${c}'`);
      tokens.push({ kind: 'number', text: m[0] });
      i += m[0].length;
    } else if (/[A-Za-z_]/.test(c)) {
      const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(source.slice(i)) as RegExpExecArray;
      tokens.push({ kind: 'word', text: m[0] });
      i += m[0].length;
    } else throw new Error(`unexpected '${c}'`);
  }
  return tokens;
}

/** Parses a ClickHouse type string; throws a plain Error that callers wrap with the column's name. */
export function parseClickHouseType(source: string): ChType {
  const tokens = tokenize(source);
  let pos = 0;
  const next = () => tokens[pos++];
  const peek = () => tokens[pos];
  const parseType = (): ChType => {
    const word = next();
    if (word?.kind !== 'word') throw new Error('expected a type name');
    const type: ChType = { name: word.text, args: [] };
    if (peek()?.text !== '(') return type;
    next();
    while (peek()?.text !== ')') {
      const t = peek();
      if (!t) throw new Error('missing )');
      if (t.kind === 'number') type.args.push(Number(next()?.text));
      else if (t.kind === 'string') {
        const label = next()?.text as string;
        // Enum entries 'name' = value: keep the label, the value is irrelevant once stored as a string.
        if (peek()?.text === '=') pos += 2;
        type.args.push(label);
      } else if (t.kind === 'word') {
        // Map/Tuple element names (`Tuple(a String)`) are not supported; a bare word starts a type.
        type.args.push(parseType());
      } else throw new Error(`unexpected '${t.text}'`);
      if (peek()?.text === ',') next();
      else if (peek()?.text !== ')') throw new Error(`expected , or ) after argument of ${type.name}`);
    }
    next();
    return type;
  };
  const type = parseType();
  if (pos !== tokens.length) throw new Error('unexpected text after the type');
  return type;
}

const primitive = (type: string): IcebergType => ({ kind: 'primitive', type });

function decimalOf(precision: number, scale: number, column: string, source: string): ColumnMapping {
  if (!(precision >= 1 && precision <= 38 && scale >= 0 && scale <= precision))
    throw new ConfigError(
      `column ${column}: ${source} has no Iceberg equivalent (decimal precision must be 1..38, scale 0..precision)`,
      { column, type: source },
    );
  return {
    iceberg: primitive(`decimal(${precision}, ${scale})`),
    optional: false,
    stagingType: `Decimal(${precision}, ${scale})`,
  };
}

function mapType(t: ChType, column: string, source: string): ColumnMapping {
  const num = (i: number) => {
    const a = t.args[i];
    if (typeof a !== 'number')
      throw new ConfigError(`column ${column}: ${source}: ${t.name} needs a numeric argument ${i + 1}`, {
        column,
        type: source,
      });
    return a;
  };
  const sub = (i: number) => {
    const a = t.args[i];
    if (typeof a !== 'object')
      throw new ConfigError(`column ${column}: ${source}: ${t.name} needs a type argument`, {
        column,
        type: source,
      });
    return mapType(a, column, source);
  };
  const same = (iceberg: string, stagingType: string): ColumnMapping => ({
    iceberg: primitive(iceberg),
    optional: false,
    stagingType,
  });
  switch (t.name) {
    case 'Nullable': {
      const inner = sub(0);
      return { ...inner, optional: true, stagingType: `Nullable(${inner.stagingType})` };
    }
    case 'LowCardinality':
      return sub(0);
    case 'String':
    case 'FixedString':
    case 'Enum8':
    case 'Enum16':
    case 'Enum':
      return same('string', 'String');
    case 'UUID':
      return same('uuid', 'UUID');
    case 'Bool':
    case 'Boolean':
      return same('boolean', 'Bool');
    case 'Int8':
    case 'Int16':
    case 'Int32':
    case 'UInt8':
    case 'UInt16':
      return same('int', 'Int32');
    // Iceberg has no unsigned types: UInt64 values must stay below 2^63 (sequence numbers and offsets do).
    case 'Int64':
    case 'UInt32':
    case 'UInt64':
      return same('long', 'Int64');
    case 'Float32':
      return same('float', 'Float32');
    case 'Float64':
      return same('double', 'Float64');
    case 'Decimal':
      return decimalOf(num(0), num(1), column, source);
    case 'Decimal32':
      return decimalOf(9, num(0), column, source);
    case 'Decimal64':
      return decimalOf(18, num(0), column, source);
    case 'Decimal128':
      return decimalOf(38, num(0), column, source);
    case 'Date':
    case 'Date32':
      return same('date', 'Date32');
    // ClickHouse DateTimes are instants (the timezone only affects display): Iceberg timestamptz, UTC, in µs.
    case 'DateTime':
    case 'DateTime64':
      return same('timestamptz', "DateTime64(6, 'UTC')");
    case 'Array': {
      const element = sub(0);
      return {
        iceberg: { kind: 'list', element: element.iceberg, elementRequired: !element.optional },
        optional: false,
        stagingType: `Array(${element.stagingType})`,
      };
    }
    case 'Map': {
      const key = sub(0);
      const value = sub(1);
      if (key.optional)
        throw new ConfigError(`column ${column}: ${source}: map keys cannot be Nullable`, {
          column,
          type: source,
        });
      return {
        iceberg: { kind: 'map', key: key.iceberg, value: value.iceberg, valueRequired: !value.optional },
        optional: false,
        stagingType: `Map(${key.stagingType}, ${value.stagingType})`,
      };
    }
    default:
      throw new ConfigError(
        `column ${column}: ClickHouse type ${source} is not supported (use String, integers, Float, Decimal, Bool, UUID, Date, DateTime, DateTime64, Enum, LowCardinality, Nullable, Array or Map)`,
        { column, type: source },
      );
  }
}

/** Maps one configured column to Iceberg. Errors name the column and the type. */
export function mapColumn(column: {
  name: string;
  type: string;
  iceberg?: string | undefined;
}): ColumnMapping {
  let parsed: ChType;
  try {
    parsed = parseClickHouseType(column.type);
  } catch (error) {
    throw new ConfigError(
      `column ${column.name}: cannot parse ClickHouse type ${JSON.stringify(column.type)}: ${(error as Error).message}`,
      {
        column: column.name,
        type: column.type,
      },
    );
  }
  const mapping = mapType(parsed, column.name, column.type);
  if (column.iceberg === undefined) return mapping;
  if (column.iceberg !== 'string')
    throw new ConfigError(
      `column ${column.name}: iceberg override ${JSON.stringify(column.iceberg)} is not supported (only "string")`,
      {
        column: column.name,
      },
    );
  return {
    iceberg: primitive('string'),
    optional: mapping.optional,
    stagingType: mapping.optional ? 'Nullable(String)' : 'String',
  };
}

/** Renders an Iceberg type without ids, for messages and for comparing schemas. */
export function icebergTypeString(t: IcebergType): string {
  if (t.kind === 'primitive') return t.type;
  if (t.kind === 'list') return `list<${icebergTypeString(t.element)}>`;
  return `map<${icebergTypeString(t.key)}, ${icebergTypeString(t.value)}>`;
}
