export type Cell = string | number | null | undefined;

/** Formats a number for a table: thousands separators, `digits` decimals; empty cells as '–'. */
export function formatCell(value: Cell, digits = 0): string {
  if (value === null || value === undefined || (typeof value === 'number' && !Number.isFinite(value))) return '–';
  if (typeof value === 'string') return value;
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** A Markdown table (readable in a terminal and pasteable into reports); numbers right-aligned. */
export function formatTable(headers: string[], rows: Cell[][], digits: number[] = []): string {
  const text = rows.map((row) => row.map((cell, i) => formatCell(cell, digits[i] ?? 0)));
  const widths = headers.map((h, i) => Math.max(h.length, ...text.map((r) => (r[i] ?? '').length)));
  const numeric = headers.map((_, i) => rows.length > 0 && rows.every((r) => typeof r[i] === 'number' || r[i] == null));
  const line = (cells: string[]) =>
    '| ' + cells.map((c, i) => (numeric[i] ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join(' | ') + ' |';
  const rule = '|' + widths.map((w, i) => '-'.repeat(w + 1) + (numeric[i] ? ':' : '-')).join('|') + '|';
  return [line(headers), rule, ...text.map(line)].join('\n');
}

export function printTable(title: string, headers: string[], rows: Cell[][], digits: number[] = []): void {
  console.log(`\n${title}\n\n${formatTable(headers, rows, digits)}\n`);
}
