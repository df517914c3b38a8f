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
  // Mutants that do not compile are dropped before any test runs, by our checker (bench/stryker-file-
  // checker.mjs): the mutated file and, when what it declares changed, its importers, in a language
  // service kept between mutants; about 0.1 s a mutant where Stryker's TypeScript checker took about 2 s,
  // with the same verdicts on 2,323 mutants. Against src alone (tsconfig.mutation.json): a mutant that
  // type-checks in src but not in a test's use of it is run instead of dropped: stricter, never kinder.
  checkers: ['typescript-file'],
  tsconfigFile: 'tsconfig.mutation.json',
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
  // Two cores shared: one checker and one test process by default; on an idle machine `--concurrency 4`
  // (two of each: the rig suites wait on Postgres and disk as much as on the cores).
  concurrency: 1,
  // The first run executes every included suite once, with coverage: several minutes on 2 cores.
  dryRunTimeoutMinutes: 45,
  // A mutant's time limit is timeoutFactor x its covering tests' time + timeoutMS + the dry run's
  // overhead (its whole time less the tests': every suite's rig set-up, minutes). The overhead already
  // covers any one mutant's set-up, so timeoutMS is a margin only; at 60 s a hanging mutant cost up to
  // 6 minutes.
  timeoutMS: 10_000,
  timeoutFactor: 2,
  // `timing` (bench/stryker-timing.mjs): minutes per mutated file, written as the run goes.
  plugins: ['@stryker-mutator/*', './bench/stryker-timing.mjs', './bench/stryker-file-checker.mjs'],
  reporters: ['clear-text', 'progress', 'html', 'json', 'timing'],
  htmlReporter: { fileName: 'reports/mutation/mutation.html' },
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  tempDirName: '.stryker-tmp',
  cleanTempDir: 'always',
  thresholds: { high: 90, low: 80, break: null },
};
