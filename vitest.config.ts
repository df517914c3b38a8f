import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/support/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // One file per core. Vitest's default leaves a core free (one worker on two cores), which ran the
    // files one after another; each file has its own database, directories and ports, so they can run
    // side by side, and overlapping files are also how races between real processes show up.
    maxWorkers: availableParallelism(),
  },
});
