import { relative } from 'node:path';
import { defineConfig } from 'vitest/config';
import { BaseSequencer, type TestSpecification } from 'vitest/node';
import base from './vitest.config.ts';

/**
 * Stryker stops a mutant's run at its first failing test (bail), so the order of the files decides what
 * a killed mutant costs. Vitest runs the file that failed last first, then the longest; a mutant that a
 * unit test kills in milliseconds could wait for a rig suite (chDB, Postgres, a first cycle: 10-20 s)
 * to fail first. Here the failed one still comes first (it killed the previous mutant, likely a
 * neighbour), then the quickest: publish-cycle.ts with every covering suite, 3 min 16 s instead of
 * 4 min 28 s. A survivor still runs every file that covers it.
 */
class QuickestFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const cache = this.ctx.cache;
    const rank = (file: TestSpecification): [number, number] => {
      const key = `${file.project.name}:${relative(this.ctx.config.root, file.moduleId)}`;
      const result = cache.getFileTestResults(key);
      return [result?.failed ? 0 : 1, result?.duration ?? Number.MAX_SAFE_INTEGER];
    };
    return [...files].sort((a, b) => {
      const [failedA, msA] = rank(a);
      const [failedB, msB] = rank(b);
      return failedA - failedB || msA - msB;
    });
  }
}

/**
 * The suites Stryker runs against each mutant of the guard modules (`npm run mutate`): the ones that
 * exercise those modules in this process. Left out: the soak (a day of cycles: slow, and it adds no
 * kill the guard suites do not make), suites that drive the code in child processes (a mutant is only
 * active in Stryker's own test process), CDK and bundling, and suites of modules not mutated.
 */
export default defineConfig({
  ...base,
  plugins: [
    {
      name: 'k2:forks-under-stryker',
      // Stryker's Vitest runner asks for worker threads; chDB and our rigs need a process of their own
      // (they change the working directory, which a worker thread cannot). One fork at a time.
      configureVitest({ project }) {
        project.config.pool = 'forks';
        project.config.maxWorkers = 1;
      },
    },
  ],
  test: {
    ...base.test,
    sequence: { sequencer: QuickestFirst },
    include: [
      'test/pipeline/**/*.test.ts',
      'test/watermark/**/*.test.ts',
      'test/plan/**/*.test.ts',
      'test/iceberg/**/*.test.ts',
      'test/audit/**/*.test.ts',
      'test/stage/attempt.test.ts',
      'test/hourly/**/*.test.ts',
      'test/integration/watermark-postgres.test.ts',
      'test/resilience/**/*.test.ts',
      'test/cli/operations.test.ts',
      'test/cli/cycles.test.ts',
      'test/cli/maintain.test.ts',
      'test/orchestration/execute.test.ts',
    ],
    exclude: [
      'test/resilience/soak.test.ts',
      'test/resilience/processes.test.ts',
      'test/resilience/localstack.test.ts',
    ],
  },
});
