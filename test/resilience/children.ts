import { spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { FaultPoint } from '../../src/pipeline/faults.ts';

/** Exit code of a child that died at its fault point. */
export const CRASH_EXIT_CODE = 86;

export type ChildStep = {
  /** The fake clock for this step (epoch ms). */
  at: number;
  /** Trades arriving over [feed.from, at) inserted before the cycle. */
  feed?: { from: number; rowsPerHour: number; seed: number; lateFraction?: number };
  cycle?: { input?: unknown; crash?: { point: FaultPoint; table?: string } };
  verify?: boolean;
};

export type ChildPlan = {
  dir: string;
  databaseUrl: string;
  /** The chDB data dir under `dir` (default `chdb`): a second process gets a copy of the first's. */
  chdb?: string;
  /** Once everything is open: create `ready`, then wait for `go` (see `startTogether`). */
  barrier?: { ready: string; go: string };
  /** Per-table caps, as a test config would set them. */
  caps?: { maxWindowSeconds?: number; maxRowsPerBatch?: number };
  steps: ChildStep[];
};

export type ChildLine = {
  step: number;
  at: string;
  passes?: Array<{ status: string; rows: number; skipped: Array<{ table: string; reason: string }> }>;
  failed?: string[];
  problems?: string[];
};

const CHILD = fileURLToPath(new URL('../support/crash-child.ts', import.meta.url));
const TSX = fileURLToPath(new URL('../../node_modules/tsx/dist/cli.mjs', import.meta.url));

export type ChildRun = {
  code: number | null;
  lines: Array<ChildLine & { crashed?: string }>;
  stderr: string;
};

/** Runs one pipeline process to its end (or its crash) and collects what it printed. */
export function runChild(plan: ChildPlan): Promise<ChildRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [TSX, CHILD, JSON.stringify(plan)], {
      cwd: plan.dir,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString();
    });
    child.stderr.on('data', (c: Buffer) => {
      err = (err + c.toString()).slice(-8000);
    });
    child.on('error', reject);
    child.on('close', (code) => {
      const lines = out
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l));
      resolve({ code, lines, stderr: err });
    });
  });
}

/**
 * Starts children that each open everything, report ready and wait; once all are ready, lets them go
 * at the same instant. A child that exits before it is ready ends the wait.
 */
export async function startTogether(plans: ChildPlan[], go: string): Promise<ChildRun[]> {
  const runs = plans.map((p) => runChild(p));
  let ended = false;
  const finished = Promise.all(runs).finally(() => {
    ended = true;
  });
  const ready = plans.map((p) => p.barrier?.ready as string);
  while (!ended && !ready.every((r) => existsSync(r))) await new Promise((r) => setTimeout(r, 20));
  writeFileSync(go, '');
  return finished;
}
