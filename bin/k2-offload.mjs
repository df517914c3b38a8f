#!/usr/bin/env node
// `k2-offload ...`: the compiled CLI (dist/cli, built by `npm ci` or `npm run build`) when it is current
// with the sources, else the TypeScript itself through tsx (slower to start, never stale).
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { currentBuild } from './compiled.mjs';

const compiled = currentBuild(join(dirname(fileURLToPath(import.meta.url)), '..'));
if (compiled) {
  await import(pathToFileURL(compiled).href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('./offload.ts');
}
