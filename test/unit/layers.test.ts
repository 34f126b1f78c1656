/**
 * The layer rules of eslint.config.js: an import of a stage before one's own fails, the stages after
 * it and the foundation pass, and an import cycle fails. Type-only cycles, which the lint rule does
 * not follow, are looked for here in the import graph of src/ read from the files themselves.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { ESLint } from 'eslint';
import { describe, expect, it } from 'vitest';

const eslint = new ESLint();

async function problems(filePath: string, code: string, rule = 'no-restricted-imports'): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath });
  return (result?.messages ?? []).filter((m) => m.ruleId === rule).map((m) => m.message);
}

describe('layers', () => {
  it('refuses an import of a stage before its own, and of the commands from anywhere else', async () => {
    expect(
      await problems(
        'src/status/probe.ts',
        "import { Bridge } from '../pipeline/supervisor.js';\nvoid Bridge;\n",
      ),
    ).toEqual([expect.stringContaining('status must not import a stage before its own')]);
    // Delivery takes its requests from nobody before it: the dispatcher builds what delivery declares.
    expect(
      await problems(
        'src/delivery/probe.ts',
        "import { planFlush } from '../batching/coalesce.js';\nvoid planFlush;\n",
      ),
    ).toEqual([expect.stringContaining('delivery must not import a stage before its own')]);
    expect(
      await problems(
        'src/batching/probe.ts',
        "import { toSourceChanges } from '../mapping/changes.js';\nvoid toSourceChanges;\n",
      ),
    ).toHaveLength(1);
    expect(
      await problems('src/demo/probe.ts', "import { register } from '../cli/run.js';\nvoid register;\n"),
    ).toHaveLength(1);
    expect(
      await problems('src/config/probe.ts', "import { Router } from '../router/router.js';\nvoid Router;\n"),
    ).toEqual([expect.stringContaining('the foundation')]);
  }, 30_000);

  it('lets a stage import the stages after its own and the foundation', async () => {
    const code = [
      "import { requestRows } from '../delivery/requests.js';",
      "import { statusSql } from '../status/sql.js';",
      "import { RETRY } from '../util/retry.js';",
      "import type { OptType } from '../domain/types.js';",
      'export const x: [unknown, unknown, unknown, OptType] = [requestRows, statusSql, RETRY, "add"];',
      '',
    ].join('\n');
    expect(await problems('src/batching/probe.ts', code)).toEqual([]);
    expect(
      await problems(
        'src/router/probe.ts',
        "import { Batcher } from '../batching/batcher.js';\nvoid Batcher;\n",
      ),
    ).toEqual([]);
  }, 30_000);

  it('refuses an import cycle, within a stage too', async () => {
    // router.ts imports watermarks.ts (a value): watermarks.ts importing router.ts closes a cycle.
    const code = "import { Router } from './router.js';\nexport const r = Router;\n";
    expect(await problems('src/router/watermarks.ts', code, 'import-x/no-cycle')).toEqual([
      expect.stringContaining('Dependency cycle'),
    ]);
    expect(await problems('src/router/probe.ts', code, 'import-x/no-cycle')).toEqual([]);
  }, 30_000);
});

/** Relative imports of a module, type-only ones and re-exports included, as absolute paths. */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const found: string[] = [];
  for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)\b[^;]*?\bfrom\s+'(\.[^']+)'/g)) {
    found.push(resolve(dirname(file), (m[1] as string).replace(/\.js$/, '.ts')));
  }
  return found;
}

/** Every cycle's modules, found by depth-first search (each cycle reported from where it was entered). */
export function cycles(graph: ReadonlyMap<string, readonly string[]>): string[][] {
  const state = new Map<string, 'open' | 'done'>();
  const path: string[] = [];
  const out: string[][] = [];
  const visit = (node: string): void => {
    state.set(node, 'open');
    path.push(node);
    for (const next of graph.get(node) ?? []) {
      if (!graph.has(next)) continue;
      if (state.get(next) === 'open') out.push(path.slice(path.indexOf(next)));
      else if (!state.has(next)) visit(next);
    }
    path.pop();
    state.set(node, 'done');
  };
  for (const node of graph.keys()) if (!state.has(node)) visit(node);
  return out;
}

describe('import graph of src/', () => {
  it('finds a cycle where there is one', () => {
    const g = new Map([
      ['a', ['b']],
      ['b', ['c']],
      ['c', ['a']],
      ['d', ['a']],
    ]);
    expect(cycles(g)).toEqual([['a', 'b', 'c']]);
    expect(
      cycles(
        new Map([
          ['a', ['b']],
          ['b', []],
        ]),
      ),
    ).toEqual([]);
  });

  it('has no cycle, type-only imports included', () => {
    const root = resolve(import.meta.dirname, '../../src');
    const files = readdirSync(root, { recursive: true, encoding: 'utf8' })
      .filter((f) => f.endsWith('.ts'))
      .map((f) => join(root, f));
    const graph = new Map(files.map((f) => [f, importsOf(f)]));
    expect(graph.size).toBeGreaterThan(80);
    expect(cycles(graph).map((c) => c.map((f) => relative(root, f)))).toEqual([]);
  });
});
