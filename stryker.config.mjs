// @ts-check
/**
 * Mutation testing of the exactly-once guard modules: `npm run mutate` (docs/mutation.md).
 * Needs Postgres: PG_URL (tests create their own databases on it; without it an embedded server starts).
 * @type {import('@stryker-mutator/api/core').PartialStrykerOptions}
 */
export default {
  packageManager: 'npm',
  testRunner: 'vitest',
  vitest: { configFile: 'vitest.mutation.config.ts', related: false },
  checkers: ['typescript'],
  // The checker compiles each mutant. Against src alone (tsconfig.mutation.json) rather than the whole
  // project with its tests and the CDK app it takes a quarter of the time (src/plan/batch.ts's 21 mutants:
  // 1 min 30 s instead of 5 min 49 s, the same verdicts). A mutant that type-checks in src but not in a
  // test's use of it is run instead of dropped: stricter, never kinder.
  tsconfigFile: 'tsconfig.mutation.json',
  typescriptChecker: { prioritizePerformanceOverAccuracy: true },
  mutate: [
    'src/pipeline/**/*.ts',
    'src/watermark/**/*.ts',
    'src/plan/**/*.ts',
    'src/iceberg/commit.ts',
    'src/iceberg/catalog.ts',
    'src/iceberg/*-catalog.ts',
    'src/iceberg/maintenance/**/*.ts',
    'src/audit/**/*.ts',
    'src/stage/attempt.ts',
    'src/hourly/check.ts',
    'src/hourly/sql.ts',
    // In-memory doubles of the watermark store and the catalog: only tests run them (the contract suites
    // hold them to the real ones), so a mutant there changes no product behaviour.
    '!src/watermark/memory.ts',
    '!src/watermark/memory-hourly.ts',
    '!src/iceberg/memory-catalog.ts',
  ],
  ignorePatterns: ['cdk.out', '.k2', 'warehouse', 'reports', 'bench/results.md'],
  coverageAnalysis: 'perTest',
  // Suites build their rig (chDB, Postgres, a first cycle) in beforeAll, outside any test: code reached
  // only there is "static" and would rerun every suite per mutant (hours). Those mutants are reported as
  // Ignored; a mutant reached inside a test too still runs, active from the suite's beforeAll on.
  ignoreStatic: true,
  incremental: true,
  incrementalFile: 'bench/stryker-incremental.json',
  // Two cores shared: one test process at a time by default (`--concurrency 2` on an idle machine).
  concurrency: 1,
  // The first run executes every included suite once, with coverage: several minutes on 2 cores.
  dryRunTimeoutMinutes: 45,
  timeoutMS: 60_000,
  timeoutFactor: 2,
  // `timing` (bench/stryker-timing.mjs): minutes per mutated file, written as the run goes.
  plugins: ['@stryker-mutator/*', './bench/stryker-timing.mjs'],
  reporters: ['clear-text', 'progress', 'html', 'json', 'timing'],
  htmlReporter: { fileName: 'reports/mutation/mutation.html' },
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  tempDirName: '.stryker-tmp',
  cleanTempDir: 'always',
  thresholds: { high: 90, low: 80, break: null },
};
