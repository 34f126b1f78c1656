/**
 * Mutation testing where the guarantees live (`npm run mutate`, and in CI): StrykerJS changes these
 * files one small breakage at a time and runs the unit tests against each; a mutant no test fails on
 * "survives". The orchestration is here (dispatcher and its request batches, request building,
 * scheduler, delivery, sent marks, status store and its write shapes) with coalescing, positions,
 * mapping and outcomes: ordering and at-least-once live in them. Below a mutation score of 80 the
 * run fails.
 *
 * Incremental: reports/stryker-incremental.json (committed) keeps each mutant's result with the code
 * and tests it ran against, so a run re-tests only mutants whose file or covering tests changed since.
 * A full run takes about half an hour on two shared cores (most mutants of coalesce.ts run its
 * property test of 3000 histories); after a change to one of these files, run `npm run mutate` and
 * commit the updated incremental file with it, so CI stays at a few minutes (docs/testing.md).
 * Reports go to reports/mutation/ (git-ignored); the sandboxes to .stryker-tmp/ (removed after a run).
 *
 * @type {import('@stryker-mutator/api/core').PartialStrykerOptions}
 */
export default {
  mutate: [
    'src/batching/coalesce.ts',
    'src/batching/dispatcher.ts',
    'src/batching/batches.ts',
    'src/batching/scheduler.ts',
    'src/delivery/requests.ts',
    'src/delivery/delivery.ts',
    'src/status/sent-mark.ts',
    'src/status/status-store.ts',
    'src/status/write-shapes.ts',
    'src/router/positions.ts',
    'src/mapping/source-mapper.ts',
    'src/mapping/changes.ts',
    'src/tuzhan/outcomes.ts',
  ],
  testRunner: 'vitest',
  // Only the unit tests, never the integration project (see the file's comment).
  vitest: { configFile: 'vitest.unit.config.ts', related: true },
  coverageAnalysis: 'perTest',
  // Two shared cores: at most two test runners.
  concurrency: 2,
  // A mutant that turns a loop infinite is stopped after the normal test time x 2 + 10 s.
  timeoutFactor: 2,
  timeoutMS: 10_000,
  // Nothing the unit tests need; keeps the sandbox copies small.
  ignorePatterns: ['dist', 'docs', 'bench', 'docker', 'test/integration', 'coverage', '.tmp'],
  reporters: ['clear-text', 'progress', 'html', 'json'],
  // The score table only: survivors and tests are in the HTML report, not thousands of lines in CI's log.
  clearTextReporter: { reportMutants: false, reportTests: false },
  htmlReporter: { fileName: 'reports/mutation/mutation.html' },
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  tempDirName: '.stryker-tmp',
  cleanTempDir: true,
  thresholds: { high: 90, low: 80, break: 80 },
  incremental: true,
  incrementalFile: 'reports/stryker-incremental.json',
};
