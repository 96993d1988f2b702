import type { Limit, Quota, Window } from './args';

/** Columns padded to their widest cell, two spaces apart; the last column is not padded. */
export function table(headers: string[], rows: string[][]): string[] {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]))).join('  ').trimEnd();
  return [line(headers), ...rows.map(line)];
}

/** `label: value` lines, values aligned. */
export function details(pairs: [string, string][]): string[] {
  const width = Math.max(...pairs.map(([label]) => label.length)) + 1;
  return pairs.map(([label, value]) => `${`${label}:`.padEnd(width)} ${value}`);
}

/**
 * One CSV field: quoted when it holds a comma, a quote or a line break. Text a spreadsheet would
 * run as a formula (a consumer named `=HYPERLINK(…)`) starts with a `'`, so it is shown, not run.
 */
export const csv = (value: unknown) => {
  let text = value === null || value === undefined ? '' : String(value);
  if (typeof value === 'string' && /^[=+\-@\t\r]/.test(text)) text = `'${text}`;
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
};

/** A time to the minute, UTC (`2026-12-06 20:33Z`); `fallback` when there is none. */
export const when = (iso: string | null | undefined, fallback: string) => (iso ? `${iso.slice(0, 10)} ${iso.slice(11, 16)}Z` : fallback);

export const windowsText = (budgets: Window[], quotas: Quota[] = []) =>
  [...budgets.map((b) => `${b.points}/${b.duration}s`), ...quotas.map((q) => `${q.points}/${q.period.toLowerCase()}`)].join(',');

export const limitsText = (limits: Limit[]) => limits.map((l) => `${l.coordinate}=${l.limit}/${l.duration}s`).join(',');
