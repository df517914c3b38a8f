import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { FUNCTION_NAMES } from '../../lib/constructs/offload-function.ts';
import { defaultConfig } from '../../src/config/load.ts';
import { PROJECT_ROOT, resourcesOfType, type Synthesized, synthesize } from './support.ts';

/**
 * The stack with the real handlers of functions/, bundled by esbuild as `cdk synth` does: every entry
 * exists, bundles for Node 22 as ESM, and loads with its `handler` export; the stack stays nag-clean.
 */
let synth: Synthesized;

beforeAll(() => {
  synth = synthesize({}, defaultConfig(), join(PROJECT_ROOT, 'functions'));
}, 300_000);

describe('the stack with the real functions', () => {
  it('bundles every function into an ES module that exports its handler', async () => {
    const functions = resourcesOfType(synth.template, 'AWS::Lambda::Function');
    expect(functions.map(([, f]) => f.Properties.FunctionName).sort()).toEqual(
      FUNCTION_NAMES.map((n) => `k2-offload-test-${n}`).sort(),
    );
    const bundles = functions.map(([, fn]) => {
      expect(fn.Properties.Handler).toBe('index.handler');
      const key = (fn.Properties.Code as { S3Key: string }).S3Key.replace(/\.zip$/, '');
      const bundle = join(synth.outdir, `asset.${key}`, 'index.mjs');
      expect(existsSync(bundle), String(fn.Properties.FunctionName)).toBe(true);
      return pathToFileURL(bundle).href;
    });
    // Loaded by plain Node, as the Lambda runtime does: no test transform in between.
    const loader = `const out = []; for (const url of JSON.parse(process.argv[1])) out.push(typeof (await import(url)).handler); console.log(JSON.stringify(out));`;
    const types = execFileSync(
      process.execPath,
      ['--input-type=module', '-e', loader, JSON.stringify(bundles)],
      {
        encoding: 'utf8',
        env: { PATH: process.env.PATH ?? '' },
      },
    );
    expect(JSON.parse(types)).toEqual(bundles.map(() => 'function'));
  });
});
