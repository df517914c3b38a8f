// Where the compiled CLI lives, and whether it is current with the TypeScript it was built from.
// Plain JavaScript with Node's own modules only: the launcher reads it before anything else loads.
import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** The compiled CLI, relative to the package root: as deep as `src/cli/`, so its relative URLs hold. */
export const COMPILED_DIR = 'dist/cli';
export const ENTRY = 'offload.mjs';
/** Every source file the build read, with its size, modification time and content hash. */
export const MANIFEST = 'sources.json';

const sha256 = (path) => createHash('sha256').update(readFileSync(path)).digest('hex');

/** The manifest entries of `files` (paths relative to `root`) as they are now. */
export function describeSources(root, files) {
  const sources = {};
  for (const file of files) {
    const path = join(root, file);
    const { size, mtimeMs } = statSync(path);
    sources[file] = { size, mtimeMs, sha256: sha256(path) };
  }
  return sources;
}

/**
 * The compiled entry when every source it was built from is unchanged, else null (never a stale
 * build). A file whose time changed (a checkout) but whose bytes did not still counts as unchanged.
 */
export function currentBuild(root) {
  let manifest;
  try {
    manifest = JSON.parse(readFileSync(join(root, COMPILED_DIR, MANIFEST), 'utf8'));
  } catch {
    return null;
  }
  try {
    for (const [file, was] of Object.entries(manifest.sources)) {
      const path = join(root, file);
      const now = statSync(path);
      if (now.size !== was.size) return null;
      if (now.mtimeMs !== was.mtimeMs && sha256(path) !== was.sha256) return null;
    }
  } catch {
    return null;
  }
  return join(root, COMPILED_DIR, ENTRY);
}
