// Aligned text tables for the terminal: the CLI prints every result table through this.
export type Align = 'left' | 'right';

/**
 * Aligned text columns: a header row, a rule, then the rows. Columns are right-aligned unless `align` says
 * otherwise (numbers read best right-aligned; the first column is usually a name and left-aligned).
 */
export function formatTable(headers: readonly string[], rows: readonly (readonly string[])[], align: readonly Align[] = []): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const cell = (text: string, i: number) => ((align[i] ?? (i === 0 ? 'left' : 'right')) === 'left' ? text.padEnd(widths[i]) : text.padStart(widths[i]));
  const line = (r: readonly string[]) => r.map((c, i) => cell(c ?? '', i)).join('  ').trimEnd();
  return [line(headers), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

/** A figure to `digits` places for a table cell or a log line, or '-' when there is none (null, undefined, NaN, Infinity). */
export function fixed(v: number | null | undefined, digits = 4): string {
  return v !== null && v !== undefined && Number.isFinite(v) ? v.toFixed(digits) : '-';
}
