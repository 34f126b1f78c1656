import { describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';

/** The lines of a help section ("Commands:", "Examples:", ...) up to the next blank line. */
function section(help: string, title: string): string[] {
  const lines = help.split('\n');
  const start = lines.indexOf(title);
  if (start < 0) return [];
  const end = lines.findIndex((l, i) => i > start && l.trim() === '');
  return lines.slice(start + 1, end < 0 ? undefined : end);
}

describe('tuzhan-cdc --help', () => {
  it('each registered command has --help with the global options and examples', async () => {
    const root = await runCli(['--help']);
    expect(root.code, root.stderr).toBe(0);
    // Every command the program lists, as registered in src/cli/main.ts (not commander's own help).
    const commands = section(root.stdout, 'Commands:')
      .map((l) => /^ {2}(\S+)/.exec(l)?.[1])
      .filter((c): c is string => c !== undefined && c !== 'help');
    expect(commands).toEqual(
      expect.arrayContaining(['run', 'check', 'status', 'retry-failed', 'teardown', 'mock-api', 'demo']),
    );

    const helps = await Promise.all(commands.map((c) => runCli([c, '--help'])));
    commands.forEach((command, i) => {
      const { code, stdout, stderr } = helps[i] as Awaited<ReturnType<typeof runCli>>;
      const context = `${command} --help:\n${stdout}${stderr}`;
      expect(code, context).toBe(0);
      expect(stdout, context).toMatch(new RegExp(`^Usage: tuzhan-cdc ${command} `, 'm'));
      const global = section(stdout, 'Global Options:').join('\n');
      expect(global, context).toMatch(/^ {2}--config <file> /m);
      expect(global, context).toMatch(/^ {2}--verbose /m);
      // At least one example, and one that runs this very command.
      const examples = section(stdout, 'Examples:');
      expect(examples.length, context).toBeGreaterThan(0);
      expect(
        examples.every((l) => l.startsWith('  ')),
        context,
      ).toBe(true);
      expect(
        examples.some((l) => l.includes(`tuzhan-cdc ${command}`)),
        context,
      ).toBe(true);
    });
  });
});
