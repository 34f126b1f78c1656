import { defineConfig } from 'vitest/config';

/**
 * The unit tests alone, as one plain (project-less) config: what `npm run mutate` (StrykerJS, see
 * stryker.config.mjs) runs against every mutant. Its vitest runner cannot pick a project of
 * vitest.config.ts, and the integration tests must never run there (they need PostgreSQL and take
 * minutes). Same files as the `unit` project of vitest.config.ts.
 */
export default defineConfig({
  test: {
    include: ['test/unit/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // A file that cannot even load must count as a failed test for Stryker: see the reporter.
    reporters: ['default', './test/helpers/stryker-load-failures.ts'],
  },
});
