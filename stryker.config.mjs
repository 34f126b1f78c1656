/**
 * Mutation testing of the core modules (`npm run mutate`): StrykerJS changes these files one small
 * breakage at a time and runs the unit tests against each; a mutant no test fails on "survives".
 * Slow (about 14 minutes on two shared cores: most mutants of coalesce.ts run its property test
 * of 3000 histories), so it is not part of `npm test` or CI. Reports go to
 * reports/mutation/ (git-ignored); the sandboxes to .stryker-tmp/ (removed after a run).
 *
 * @type {import('@stryker-mutator/api/core').PartialStrykerOptions}
 */
export default {
  mutate: [
    'src/batching/coalesce.ts',
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
  htmlReporter: { fileName: 'reports/mutation/mutation.html' },
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  tempDirName: '.stryker-tmp',
  cleanTempDir: true,
  thresholds: { high: 90, low: 75, break: null },
};
