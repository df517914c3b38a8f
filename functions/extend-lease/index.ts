import { lambdaDeps } from '../shared/deps.ts';
import { createHandler } from './handler.ts';

/** What this function connects to; the stack grants the same secrets (FUNCTION_ACCESS). */
export const needs = { clickhouse: false, postgres: true };

export const handler = createHandler(lambdaDeps(needs));
