// Numbers and dates for people: 1.2K, and dates in the viewer's time zone (UTC in the title).

const compactFormat = new Intl.NumberFormat(undefined, { notation: 'compact', maximumFractionDigits: 1 });
const wholeFormat = new Intl.NumberFormat();
const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

/** 950, 1.2K, 3.4M. */
export const compact = (n: number | null | undefined) => (n === null || n === undefined ? '—' : compactFormat.format(n));
export const whole = (n: number) => wholeFormat.format(n);
export const localDate = (iso: string | Date) => dateFormat.format(new Date(iso));
export const utcDate = (iso: string | Date) => `${new Date(iso).toISOString().replace('T', ' ').slice(0, 19)} UTC`;

/** A date as a datetime-local value (to the minute) in the viewer's time zone, at that date's own offset (summer time or not). */
export function toLocalInput(iso: string | Date): string {
  const d = new Date(iso);
  return new Date(d.getTime() - d.getTimezoneOffset() * 60_000).toISOString().slice(0, 16);
}
/** A datetime-local value back to a date in the viewer's time zone; null when empty or not a date. */
export function fromLocalInput(value: string): Date | null {
  const d = new Date(value);
  return value && !Number.isNaN(d.getTime()) ? d : null;
}

/** 60 → "1 minute", 86400 → "1 day". */
export function duration(seconds: number): string {
  const units: [number, string][] = [[86_400, 'day'], [3_600, 'hour'], [60, 'minute'], [1, 'second']];
  for (const [size, name] of units) {
    if (seconds % size === 0) {
      const n = seconds / size;
      return `${n} ${name}${n === 1 ? '' : 's'}`;
    }
  }
  return `${seconds} seconds`;
}

/** "a, b" → ["a", "b"]; one per line or comma-separated. */
export const list = (text: string) => text.split(/[\n,]/).map((s) => s.trim()).filter(Boolean);
