import { execFile, spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { COMPILED_DIR, currentBuild, describeSources, ENTRY, MANIFEST } from '../../bin/compiled.mjs';
import { BIN, childEnv, spawnCli } from './support.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const TRACE = fileURLToPath(new URL('./fixtures/trace-imports.mjs', import.meta.url));

/** The modules `k2-offload argv` resolves, as the CLI runs from a shell. */
function loadedBy(argv: string[], trace: string): Promise<{ code: number; modules: string[] }> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, ['--import', TRACE, BIN, ...argv], {
      env: childEnv({ K2_TRACE_IMPORTS: trace }),
      stdio: 'ignore',
    });
    child.on('error', fail);
    child.on('close', async (code) =>
      done({ code: code ?? -1, modules: (await readFile(trace, 'utf8')).split('\n').filter(Boolean) }),
    );
  });
}

describe('k2-offload start-up', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'k2-startup-'));
    // What `npm ci` does (prepare): compile the CLI.
    await promisify(execFile)(process.execPath, [join(ROOT, 'scripts/build-cli.mjs')], { cwd: ROOT });
  }, 120_000);
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('--help runs the compiled CLI and loads neither TypeScript, the AWS SDK, the state machine runner nor chDB', async () => {
    const { code, modules } = await loadedBy(['--help'], join(dir, 'help.txt'));
    expect(code).toBe(0);
    expect(modules.some((m) => m.endsWith(`${COMPILED_DIR}/${ENTRY}`))).toBe(true);
    const heavy = modules.filter((m) => /\/(tsx|@aws-sdk|aws-local-stepfunctions|chdb)\//.test(m));
    expect(heavy).toEqual([]);
    expect(modules.some((m) => m.endsWith('.ts'))).toBe(false);
  });

  it('the compiled CLI finds its package: --version prints the version of package.json', async () => {
    const { version } = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8'));
    const r = await spawnCli(['--version'], { env: childEnv({}), cwd: dir });
    expect(r.stdout).toBe(`k2-offload ${version}\n`);
  });

  it('the compiled CLI counts as current only while every source it was built from is unchanged', async () => {
    // A package of one source file and its build manifest.
    const root = join(dir, 'pkg');
    await mkdir(join(root, COMPILED_DIR), { recursive: true });
    await mkdir(join(root, 'src'), { recursive: true });
    await writeFile(join(root, 'src/a.ts'), 'export const a = 1;\n');
    await writeFile(join(root, COMPILED_DIR, ENTRY), '');
    await writeFile(
      join(root, COMPILED_DIR, MANIFEST),
      JSON.stringify({ sources: describeSources(root, ['src/a.ts']) }),
    );
    expect(currentBuild(root)).toBe(join(root, COMPILED_DIR, ENTRY));
    // Touched (a checkout) but the same bytes: still current.
    await utimes(join(root, 'src/a.ts'), new Date(), new Date(Date.now() + 5000));
    expect(currentBuild(root)).toBe(join(root, COMPILED_DIR, ENTRY));
    // Edited, even to the same length: stale, so the launcher runs the TypeScript instead.
    await writeFile(join(root, 'src/a.ts'), 'export const a = 2;\n');
    expect(currentBuild(root)).toBeNull();
    // Removed, or no manifest at all: stale too.
    await rm(join(root, 'src/a.ts'));
    expect(currentBuild(root)).toBeNull();
    await rm(join(root, COMPILED_DIR, MANIFEST));
    expect(currentBuild(root)).toBeNull();
  });

  it('with the build stale, the same command runs from the TypeScript sources', async () => {
    const manifestPath = join(ROOT, COMPILED_DIR, MANIFEST);
    const manifest = JSON.parse(await readFile(manifestPath, 'utf8'));
    // A manifest that says a source was different when built: the build is stale.
    const [first] = Object.keys(manifest.sources);
    const stale = {
      sources: { ...manifest.sources, [first as string]: { size: -1, mtimeMs: 0, sha256: '' } },
    };
    await writeFile(manifestPath, JSON.stringify(stale));
    try {
      const { code, modules } = await loadedBy(['--help'], join(dir, 'stale.txt'));
      expect(code).toBe(0);
      expect(modules.some((m) => m.endsWith(`${COMPILED_DIR}/${ENTRY}`))).toBe(false);
      expect(modules.some((m) => m.endsWith('/bin/offload.ts'))).toBe(true);
    } finally {
      await writeFile(manifestPath, JSON.stringify(manifest));
    }
  });
});
