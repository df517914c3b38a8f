/**
 * A stage deployed before its connections are known: the stack creates the ClickHouse and Postgres
 * secrets holding this placeholder, and the functions treat it as "not configured yet" (nothing to do,
 * no failure, no page) rather than as a broken connection (which pages).
 */
export const PLACEHOLDER_KEY = 'k2-offload';
export const PLACEHOLDER_VALUE = 'not configured';

/** The placeholder secret value: JSON, with an empty `url` and a note saying what to put there. */
export const SECRET_PLACEHOLDER = {
  url: '',
  [PLACEHOLDER_KEY]: PLACEHOLDER_VALUE,
  note: 'Replace this whole value with {"url": "..."} (see README, Deploy to AWS).',
} as const;

export function isPlaceholderSecret(secret: Record<string, unknown>): boolean {
  return secret[PLACEHOLDER_KEY] === PLACEHOLDER_VALUE;
}

/** What the cycle and the health check say while a secret holds the placeholder. */
export function notConfiguredMessage(secretArn: string): string {
  const name = /:secret:(.+?)(-[A-Za-z0-9]{6})?$/.exec(secretArn)?.[1] ?? secretArn;
  return `not configured: put {"url": ...} in secret ${name} (${secretArn})`;
}
