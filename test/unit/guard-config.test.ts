/**
 * `guard.maxRemovals` (top level and per source): a number of rows, a share, or off; a malformed
 * value is one line naming the key. And what each form allows for a source of a given size.
 */
import { describe, expect, it } from 'vitest';
import { describeLimit, removalLimit, type RemovalLimit } from '../../src/config/guard.js';
import { loadConfig } from '../../src/config/load-config.js';
import { ConfigError } from '../../src/errors.js';

function yaml(top: string, source = ''): string {
  return `
postgres: { url: "postgres://bridge@db:5432/crm" }
tuzhan: { token: tok }
${top}
sources:
  - name: profiles
    table: crm.customer_profile
    mode: row
    columns: { thirdId: cust_no, groups: grp }
    match: { isMatching: false }
${source ? `    ${source}` : ''}
`;
}

function problems(text: string): readonly string[] {
  try {
    loadConfig({ text, env: {} });
    return [];
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
}

const limits = (text: string) => {
  const c = loadConfig({ text, env: {} });
  return { top: c.guard.maxRemovals, source: c.sources[0]?.guard?.maxRemovals };
};

describe('guard config', () => {
  it('defaults to max(100, 10 %) and takes rows, shares and off, at the top level and per source', () => {
    // A source without a guard of its own takes the top level's.
    expect(limits(yaml(''))).toEqual({ top: { kind: 'default' }, source: { kind: 'default' } });
    expect(limits(yaml('guard: { maxRemovals: 7 }')).source).toEqual({ kind: 'rows', rows: 7 });
    expect(limits(yaml('guard: { maxRemovals: 500 }')).top).toEqual({ kind: 'rows', rows: 500 });
    expect(limits(yaml('guard: { maxRemovals: "2.5%" }')).top).toEqual({ kind: 'share', percent: 2.5 });
    expect(limits(yaml('guard: off')).top).toEqual({ kind: 'off' });
    expect(limits(yaml('guard: { maxRemovals: off }')).top).toEqual({ kind: 'off' });
    expect(limits(yaml('', 'guard: { maxRemovals: "5%" }')).source).toEqual({ kind: 'share', percent: 5 });
    expect(limits(yaml('', 'guard: off')).source).toEqual({ kind: 'off' });
  });

  it('a malformed value is one line naming the key and what is expected', () => {
    expect(problems(yaml('guard: { maxRemovals: lots }'))).toEqual([
      `guard.maxRemovals: expected a number of rows (500), a share of the source's rows ("5%"), or off; got "lots"`,
    ]);
    expect(problems(yaml('guard: { maxRemovals: -1 }'))).toEqual([
      `guard.maxRemovals: expected a number of rows (500), a share of the source's rows ("5%"), or off; got -1`,
    ]);
    expect(problems(yaml('', 'guard: { maxRemovals: "150%" }'))).toEqual([
      'sources[0] (profiles).guard.maxRemovals: a share must be more than 0% and at most 100%; got "150%"',
    ]);
    expect(problems(yaml('guard: { maxRemoval: 5 }'))).toEqual([
      'guard.maxRemoval: unknown key (did you mean `maxRemovals`?)',
    ]);
  });

  it('each form allows so many rows of a source of a given size', () => {
    const cases: Array<[RemovalLimit, number, number | null]> = [
      [{ kind: 'default' }, 0, 100],
      [{ kind: 'default' }, 999, 100],
      [{ kind: 'default' }, 2000, 200],
      [{ kind: 'rows', rows: 500 }, 10, 500],
      [{ kind: 'share', percent: 5 }, 1000, 50],
      [{ kind: 'share', percent: 5 }, 10, 0],
      [{ kind: 'off' }, 1000, null],
    ];
    for (const [limit, rows, allowed] of cases)
      expect(removalLimit(limit, rows), JSON.stringify([limit, rows])).toBe(allowed);
    expect(describeLimit({ kind: 'share', percent: 5 }, 1000)).toBe('5% of 1000 rows = 50');
  });
});
