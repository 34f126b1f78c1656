/** How numbers, sizes, durations and tables read in the terminal: one of each, for every command. */
import stringWidth from 'string-width';

/** 1,234,567 */
export function formatCount(n: number): string {
  return n.toLocaleString('en-US');
}

/** 512 B, 15.9 kB, 3.2 MB, 1.1 GB (powers of 1024). */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['kB', 'MB', 'GB', 'TB'];
  let v = n;
  let i = -1;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(1)} ${units[i]}`;
}

/** 45 s, 12 min, 3.5 h, 2.1 days. */
export function formatDuration(seconds: number): string {
  if (seconds < 120) return `${seconds} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172_800) return `${(seconds / 3600).toFixed(1)} h`;
  return `${(seconds / 86_400).toFixed(1)} days`;
}

/**
 * Terminal width of a text, as string-width measures it from Unicode's East Asian Width: CJK
 * takes two columns, combining marks and zero-width characters none, emoji two.
 */
export function displayWidth(s: string): number {
  return stringWidth(s);
}

/**
 * An aligned text table. `plain` (commands): columns two spaces apart, the header underlined with
 * dashes. `psql` (the demo's report): ` a | b` rows and a `---+---` rule, as psql prints them.
 * Newline-terminated.
 */
export function formatTable(
  headers: readonly string[],
  rows: ReadonlyArray<readonly string[]>,
  style: 'plain' | 'psql' = 'plain',
): string {
  const widths = headers.map((h, i) =>
    Math.max(displayWidth(h), ...rows.map((r) => displayWidth(r[i] ?? ''))),
  );
  const pad = (s: string, i: number): string => s + ' '.repeat((widths[i] ?? 0) - displayWidth(s));
  if (style === 'psql') {
    const line = (cells: readonly string[]): string => ` ${cells.map(pad).join(' | ')}`.trimEnd();
    return `${[line(headers), ` ${widths.map((w) => '-'.repeat(w)).join('-+-')}`, ...rows.map(line)].join('\n')}\n`;
  }
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : pad(c, i)))
      .join('  ')
      .trimEnd();
  return `${[line(headers), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n')}\n`;
}
