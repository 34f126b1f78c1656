/**
 * No source file in src/ over 350 lines: past that, a file holds more than one responsibility and is
 * split by them (the style the code keeps). Counted as `wc -l` counts, newlines.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const LIMIT = 350;

/** Lines of a text as `wc -l` counts them: its newlines. */
export function lineCount(text: string): number {
  let n = 0;
  for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) n += 1;
  return n;
}

describe('source files', () => {
  it('counts lines as wc -l does', () => {
    expect(lineCount('a\nb\n')).toBe(2);
    expect(lineCount('a\nb')).toBe(1);
    expect(lineCount('')).toBe(0);
  });

  it(`none in src/ is over ${LIMIT} lines`, () => {
    const root = resolve(import.meta.dirname, '../../src');
    const files = readdirSync(root, { recursive: true, encoding: 'utf8' }).filter((f) =>
      /\.(ts|js)$/.test(f),
    );
    expect(files.length).toBeGreaterThan(80);
    const long = files
      .map((f) => [f, lineCount(readFileSync(join(root, f), 'utf8'))] as const)
      .filter(([, n]) => n > LIMIT)
      .map(([f, n]) => `${f}: ${n} lines`);
    expect(long).toEqual([]);
  });
});
