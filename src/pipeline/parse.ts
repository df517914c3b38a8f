import type { z } from 'zod';
import { ConfigError } from '../errors.ts';

/** Parses a step's event with its schema; the error names the field and what was expected. */
export function parseEvent<T extends z.ZodType>(schema: T, raw: unknown, what: string): z.infer<T> {
  const parsed = schema.safeParse(raw);
  if (parsed.success) return parsed.data;
  const issues = parsed.error.issues
    .slice(0, 5)
    .map((i) => `${i.path.map(String).join('.') || '(root)'}: ${i.message}`)
    .join('; ');
  throw new ConfigError(`${what} is malformed: ${issues}`, { what });
}
