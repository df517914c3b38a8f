import { FUNCTION_ACCESS } from '../../src/runtime/access.ts';
import { lambdaDeps } from '../shared/deps.ts';
import { createHandler } from './handler.ts';

/** What this function connects to, declared once; the stack grants the same. */
export const needs = FUNCTION_ACCESS.health;

export const handler = createHandler(lambdaDeps(needs));
