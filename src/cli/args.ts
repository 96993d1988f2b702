/**
 * The CLI's option values, read into what the admin API takes. A value that does not read throws
 * a UsageError saying what was expected, before anything is opened; the API checks the rest
 * (known scopes, plans, consumers, coordinates) and its refusal is reported as it is.
 */
export class UsageError extends Error {}

export type Window = { points: number; duration: number };
export type Quota = { points: number; period: 'DAY' | 'MONTH' };
export type Limit = { coordinate: string; limit: number; duration: number };

/** `none` (or `never` for dates) clears a value on update. */
const CLEAR = 'none';

/** A comma-separated list; absent: undefined (nothing set). */
export function list(value: string | undefined): string[] | undefined {
  return value === undefined ? undefined : value.split(',').map((s) => s.trim()).filter(Boolean);
}

/** A list that `none` clears (to []). */
export const clearableList = (value: string | undefined) => (value === CLEAR ? [] : list(value));

/** A value `none` clears (to null). */
export const clearable = (value: string | undefined) => (value === CLEAR ? null : value);

const whole = (text: string) => (/^\d{1,9}$/.test(text) ? Number(text) : NaN);

/** `500/60` (points per seconds; `60s` too), comma-separated: operation-budget windows. */
export function windows(option: string, value: string | undefined): Window[] | null | undefined {
  if (value === undefined) return undefined;
  if (value === CLEAR) return null;
  return value.split(',').map((part) => {
    const m = /^\s*(\d+)\/(\d+)s?\s*$/.exec(part);
    if (!m) throw new UsageError(`--${option} "${part}" must be POINTS/SECONDS, e.g. 500/60 (several: 500/60,10000/3600; or none)`);
    return { points: whole(m[1]), duration: whole(m[2]) };
  });
}

/** `1000/day,30000/month`: calendar quotas. */
export function quotas(value: string | undefined): Quota[] | null | undefined {
  if (value === undefined) return undefined;
  if (value === CLEAR) return null;
  return value.split(',').map((part) => {
    const m = /^\s*(\d+)\/(day|month)\s*$/i.exec(part);
    if (!m) throw new UsageError(`--quotas "${part}" must be POINTS/day or POINTS/month, e.g. 1000/day,30000/month (or none)`);
    return { points: whole(m[1]), period: m[2].toUpperCase() as Quota['period'] };
  });
}

/** `Query.forecast=10/60,…`: field limits by schema coordinate. */
export function limits(value: string | undefined): Limit[] | null | undefined {
  if (value === undefined) return undefined;
  if (value === CLEAR) return null;
  return value.split(',').map((part) => {
    const m = /^\s*([A-Za-z_]\w*\.[A-Za-z_]\w*)=(\d+)\/(\d+)s?\s*$/.exec(part);
    if (!m) throw new UsageError(`--limits "${part}" must be Type.field=LIMIT/SECONDS, e.g. Query.forecast=10/60 (several: comma-separated; or none)`);
    return { coordinate: m[1], limit: whole(m[2]), duration: whole(m[3]) };
  });
}

/** A date (`2027-01-01`, or any ISO-8601 date-time); `never` clears it. */
export function expiry(value: string | undefined): Date | null | undefined {
  if (value === undefined) return undefined;
  if (value === 'never') return null;
  return date('expires', value, 'use e.g. 2027-01-01, or never');
}

export function date(option: string, value: string, hint = 'e.g. 2026-11-01 or 2026-11-01T12:00:00Z'): Date {
  const parsed = new Date(value);
  if (Number.isNaN(parsed.getTime())) throw new UsageError(`--${option} "${value}" is not a date (${hint})`);
  return parsed;
}

/** A whole number in a range, or `none` when `clear` allows it. */
export function integer(option: string, value: string | undefined, range: { min: number; max?: number }): number | undefined {
  if (value === undefined) return undefined;
  const n = whole(value);
  if (Number.isNaN(n) || n < range.min || (range.max !== undefined && n > range.max)) {
    throw new UsageError(`--${option} "${value}" must be a whole number from ${range.min}${range.max !== undefined ? ` to ${range.max}` : ''}`);
  }
  return n;
}

/** One of a few words, case-insensitive. */
export function oneOf<T extends string>(option: string, value: string | undefined, choices: readonly T[], fallback: T): T {
  const v = (value ?? fallback).toLowerCase() as T;
  if (!choices.includes(v)) throw new UsageError(`--${option} "${value}" must be ${choices.slice(0, -1).join(', ')} or ${choices.at(-1)}`);
  return v;
}

/** Drops undefined entries: the API reads an absent field as "unchanged", a null as "clear". */
export function defined<T extends Record<string, unknown>>(input: T): Partial<T> {
  return Object.fromEntries(Object.entries(input).filter(([, v]) => v !== undefined)) as Partial<T>;
}
