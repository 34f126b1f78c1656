/** The layer rule of eslint.config.js fails an import from a later stage, and lets the order through. */
import { ESLint } from 'eslint';
import { describe, expect, it } from 'vitest';

const eslint = new ESLint();

async function problems(filePath: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath });
  return (result?.messages ?? []).filter((m) => m.ruleId === 'no-restricted-imports').map((m) => m.message);
}

describe('layers', () => {
  it('refuses an import from a later stage, and cli or demo from anywhere else', async () => {
    expect(
      await problems(
        'src/status/probe.ts',
        "import { Bridge } from '../pipeline/supervisor.js';\nvoid Bridge;\n",
      ),
    ).toEqual([expect.stringContaining('status must not import a later stage')]);
    expect(
      await problems('src/demo/probe.ts', "import { register } from '../cli/run.js';\nvoid register;\n"),
    ).toHaveLength(1);
    expect(
      await problems('src/config/probe.ts', "import { Router } from '../router/router.js';\nvoid Router;\n"),
    ).toEqual([expect.stringContaining('the foundation')]);
  }, 30_000);

  it('lets a stage import the foundation and earlier stages', async () => {
    const code = [
      "import { statusSql } from '../status/sql.js';",
      "import { RETRY } from '../util/retry.js';",
      "import type { OptType } from '../domain/types.js';",
      'export const x: [unknown, unknown, OptType] = [statusSql, RETRY, "add"];',
      '',
    ].join('\n');
    expect(await problems('src/delivery/probe.ts', code)).toEqual([]);
  }, 30_000);
});
