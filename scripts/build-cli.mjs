#!/usr/bin/env node
// Compiles the CLI (bin/offload.ts and everything it imports) to JavaScript in dist/cli/, so that
// `k2-offload` starts without compiling TypeScript. `npm ci` runs it (prepare); `npm run build` too.
// Modules the code imports lazily (the AWS SDK, the local state machine runner) become chunks of their
// own, loaded only by the commands that use them.
import { randomUUID } from 'node:crypto';
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { COMPILED_DIR, describeSources, ENTRY, MANIFEST } from '../bin/compiled.mjs';

// esbuild comes with the dev dependencies (and with tsx). Without it there is nothing to compile with,
// which is no failure: the launcher then runs the TypeScript through tsx.
const esbuild = await import('esbuild').catch(() => undefined);
if (!esbuild) {
  console.log('k2-offload: esbuild is not installed; the CLI runs from its TypeScript sources');
  process.exit(0);
}

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
// Pure JavaScript packages of many small modules, loaded at every start, are compiled in: one file
// loads faster than hundreds (zod alone is 225). Every other package stays an import from node_modules,
// as installed: native code (chDB, embedded Postgres), the AWS SDK (loaded lazily), tsx. Their sources
// are in the manifest too, so updating one of them makes the build stale.
const COMPILED_IN = new Set([
  'zod',
  'hyparquet',
  'hyparquet-writer',
  'lossless-json',
  'pg',
  '@clickhouse/client',
]);
const pkg = JSON.parse(await readFile(join(root, 'package.json'), 'utf8'));
const external = Object.keys({ ...pkg.dependencies, ...pkg.devDependencies })
  .filter((name) => !COMPILED_IN.has(name))
  .flatMap((name) => [name, `${name}/*`])
  .concat('pg-native');
const target = join(root, COMPILED_DIR);
// Built aside and swapped in whole: a CLI starting meanwhile sees the old build or the new one.
const staging = `${target}.${randomUUID()}`;

const result = await esbuild.build({
  absWorkingDir: root,
  entryPoints: { [ENTRY.replace(/\.mjs$/, '')]: 'bin/offload.ts' },
  outdir: staging,
  outExtension: { '.js': '.mjs' },
  chunkNames: 'chunk-[hash]',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  external,
  metafile: true,
  // pg and the ClickHouse client are CommonJS: their require() of Node's modules needs a require here.
  banner: {
    js: "import { createRequire as k2CreateRequire } from 'node:module'; const require = k2CreateRequire(import.meta.url);",
  },
  logLevel: 'warning',
});
const inputs = Object.keys(result.metafile.inputs).map((file) => relative(root, join(root, file)));
await writeFile(join(staging, MANIFEST), `${JSON.stringify({ sources: describeSources(root, inputs) })}\n`);
const old = `${target}.old-${randomUUID()}`;
await rename(target, old).catch(() => undefined);
await rename(staging, target);
await rm(old, { recursive: true, force: true });
console.log(`k2-offload: compiled ${inputs.length} source files to ${COMPILED_DIR}/`);
