/**
 * A vitest reporter for `npm run mutate` only (see vitest.unit.config.ts): a test file that fails
 * without any failed test (it threw while loading or collecting, e.g. a mutant makes a
 * `describe`-level `new SourceMapper(...)` throw) gets one failed test carrying the file's error.
 *
 * Why: Stryker's vitest runner (9.6.1, and 10.0.0 alike) builds a mutant's verdict from the
 * tests it collects, and such a file collects none, so the mutant counted as survived although
 * `vitest run` fails on it (stryker-mutator/stryker-js#6150). Files that ran are left alone.
 */
import type { RunnerTask, RunnerTestCase, RunnerTestFile, RunnerTestSuite } from 'vitest';
import type { Reporter, Vitest } from 'vitest/node';

function hasFailedTest(suite: RunnerTestSuite): boolean {
  return suite.tasks.some((t: RunnerTask) =>
    t.type === 'suite' ? hasFailedTest(t) : t.type === 'test' && t.result?.state === 'fail',
  );
}

export default class LoadFailuresAsTests implements Reporter {
  private vitest: Vitest | undefined;

  onInit(vitest: Vitest): void {
    this.vitest = vitest;
  }

  onTestRunEnd(): void {
    for (const file of this.vitest?.state.getFiles() ?? []) {
      if (file.result?.state !== 'fail' || hasFailedTest(file)) continue;
      file.tasks.push(loadFailure(file));
    }
  }
}

function loadFailure(file: RunnerTestFile): RunnerTestCase {
  const errors = file.result?.errors?.length
    ? file.result.errors
    : [{ name: 'Error', message: `${file.name} failed outside of its tests` }];
  // Only what Stryker reads of a finished test: its name, file, suite, mode and result.
  return {
    type: 'test',
    id: `${file.id}_load`,
    name: 'the test file loads',
    fullName: `${file.name} > the test file loads`,
    mode: 'run',
    file,
    suite: file,
    meta: {},
    annotations: [],
    artifacts: [],
    timeout: 0,
    result: { state: 'fail', errors },
  } as unknown as RunnerTestCase;
}
