// @ts-check
/**
 * A Stryker reporter (`timing`, configured in stryker.config.mjs) that says where a mutation run's time
 * goes, per mutated file: how many mutants were tested, their verdicts, and the minutes from one
 * tested verdict to the next, which with one test runner is what each mutant cost (the type checker
 * works ahead of it; with two runners, each file's share of the wall time). Each verdict is appended
 * to reports/mutation/timing.log as it comes, so a run stopped half way still says what its first
 * half cost; the table is written to reports/mutation/timing.md at the end.
 */
import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, relative } from 'node:path';

const LOG = 'reports/mutation/timing.log';
const TABLE = 'reports/mutation/timing.md';

/** @typedef {{ tested: number; killed: number; survived: number; timeout: number; other: number; ms: number; slowest: number }} FileCost */

function createTimingReporter() {
  /** @type {Map<string, FileCost>} */
  const files = new Map();
  let last = Date.now();
  let started = last;
  const cost = (/** @type {string} */ file) => {
    let entry = files.get(file);
    if (!entry) {
      entry = { tested: 0, killed: 0, survived: 0, timeout: 0, other: 0, ms: 0, slowest: 0 };
      files.set(file, entry);
    }
    return entry;
  };
  return {
    /** @param {{ mutantPlans: ReadonlyArray<{ plan: string }> }} event */
    onMutationTestingPlanReady(event) {
      mkdirSync(dirname(LOG), { recursive: true });
      const runs = event.mutantPlans.filter((p) => p.plan === 'Run').length;
      writeFileSync(LOG, `# ${new Date().toISOString()} ${runs} mutants to run\n`);
      started = last = Date.now();
    },
    /** @param {{ fileName: string; status: string; id: string; mutatorName: string; replacement?: string; location: { start: { line: number; column: number } } }} result */
    onMutantTested(result) {
      // Verdicts known before any test ran (no coverage, compile error, ignored) cost no test time, and
      // they arrive between the test runner's: the time is taken from one tested verdict to the next.
      if (['NoCoverage', 'CompileError', 'Ignored', 'Pending'].includes(result.status)) return;
      const now = Date.now();
      const ms = now - last;
      last = now;
      const file = relative(process.cwd(), result.fileName);
      const entry = cost(file);
      entry.tested++;
      entry.ms += ms;
      entry.slowest = Math.max(entry.slowest, ms);
      if (result.status === 'Killed') entry.killed++;
      else if (result.status === 'Survived') entry.survived++;
      else if (result.status === 'Timeout') entry.timeout++;
      else entry.other++;
      // A mutant not killed is written whole (column and replacement), to be looked at while the run goes on.
      const what =
        result.status === 'Killed'
          ? ''
          : `:${result.location.start.column} ${JSON.stringify(result.replacement ?? '')}`;
      const line = `${new Date(now).toISOString()} ${ms} ${result.status} ${file}:${result.location.start.line}${what} ${result.mutatorName}\n`;
      appendFileSync(LOG, line);
    },
    onMutationTestReportReady() {
      const minutes = (/** @type {number} */ ms) => (ms / 60_000).toFixed(1);
      const rows = [...files.entries()].sort((a, b) => b[1].ms - a[1].ms);
      const lines = [
        `Mutant phase: ${minutes(Date.now() - started)} min (${new Date().toISOString()})`,
        '',
        '| File | Tested | Killed | Survived | Timeout | Minutes | Seconds a mutant | Slowest (s) |',
        '| --- | --- | --- | --- | --- | --- | --- | --- |',
        ...rows.map(
          ([file, c]) =>
            `| ${file} | ${c.tested} | ${c.killed} | ${c.survived} | ${c.timeout} | ${minutes(c.ms)} | ${(c.ms / c.tested / 1000).toFixed(1)} | ${(c.slowest / 1000).toFixed(0)} |`,
        ),
      ];
      writeFileSync(TABLE, `${lines.join('\n')}\n`);
    },
  };
}

export const strykerPlugins = [{ kind: 'Reporter', name: 'timing', value: createTimingReporter() }];
