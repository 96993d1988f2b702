import type { BudgetWindow, LimitOverride, Quota } from '../db/schema';

/** A refused input: what the client sent wrong, and where. */
export type Failure = { ok: false; code: 'BAD_USER_INPUT' | 'NOT_FOUND' | 'FORBIDDEN'; message: string; field?: string; reason?: string };
export type Result<T> = { ok: true; value: T } | Failure;

export const fail = (code: Failure['code'], message: string, field?: string): Failure => ({ ok: false, code, message, field });

/** The longest window a budget or limit may have: a year. */
export const MAX_DURATION = 366 * 24 * 3600;

/**
 * Field limits as keys, consumers and plans give them: only coordinates that carry @rateLimit,
 * positive whole numbers, and one limit per coordinate and window length (two would share a counter).
 */
export function invalidLimits(limits: readonly LimitOverride[] | undefined, limitedCoordinates: ReadonlySet<string>, field = 'limits'): Failure | null {
  const windowsSeen = new Set<string>();
  for (const [i, o] of (limits ?? []).entries()) {
    const window = `${o.coordinate}/${o.duration}`;
    if (windowsSeen.has(window)) return fail('BAD_USER_INPUT', `"${o.coordinate}" has two limits with a ${o.duration}-second window; give one.`, `${field}[${i}].duration`);
    windowsSeen.add(window);
    if (!limitedCoordinates.has(o.coordinate)) {
      return fail('BAD_USER_INPUT', `"${o.coordinate}" carries no @rateLimit; limited fields: ${[...limitedCoordinates].join(', ')}.`, `${field}[${i}].coordinate`);
    }
    if (!Number.isInteger(o.limit) || o.limit < 1) return fail('BAD_USER_INPUT', '"limit" must be a positive integer.', `${field}[${i}].limit`);
    if (!Number.isInteger(o.duration) || o.duration < 1 || o.duration > MAX_DURATION) {
      return fail('BAD_USER_INPUT', `"duration" must be from 1 to ${MAX_DURATION} seconds.`, `${field}[${i}].duration`);
    }
  }
  return null;
}

/** Operation-budget windows: positive whole points, durations within a year, one window per length. */
export function invalidBudgets(budgets: readonly BudgetWindow[] | undefined, field = 'budgets'): Failure | null {
  const lengths = new Set<number>();
  for (const [i, b] of (budgets ?? []).entries()) {
    const at = budgets!.length === 1 && field === 'budget' ? field : `${field}[${i}]`;
    if (!Number.isInteger(b.points) || b.points < 1) return fail('BAD_USER_INPUT', `"${at}.points" must be a positive integer.`, `${at}.points`);
    if (!Number.isInteger(b.duration) || b.duration < 1 || b.duration > MAX_DURATION) {
      return fail('BAD_USER_INPUT', `"${at}.duration" must be from 1 to ${MAX_DURATION} seconds.`, `${at}.duration`);
    }
    if (lengths.has(b.duration)) return fail('BAD_USER_INPUT', `Two budget windows of ${b.duration} seconds; give one.`, `${at}.duration`);
    lengths.add(b.duration);
  }
  return null;
}

/** Calendar quotas: positive whole points, one per period. */
export function invalidQuotas(quotas: readonly Quota[] | undefined): Failure | null {
  const periods = new Set<string>();
  for (const [i, q] of (quotas ?? []).entries()) {
    if (!Number.isInteger(q.points) || q.points < 1) return fail('BAD_USER_INPUT', `"quotas[${i}].points" must be a positive integer.`, `quotas[${i}].points`);
    if (periods.has(q.period)) return fail('BAD_USER_INPUT', `Two ${q.period} quotas; give one.`, `quotas[${i}].period`);
    periods.add(q.period);
  }
  return null;
}

/** A name shown in lists: 1 to 100 characters, no control characters. */
export function invalidName(name: string | undefined): Failure | null {
  const trimmed = name?.trim() ?? '';
  if (trimmed.length < 1 || trimmed.length > 100) return fail('BAD_USER_INPUT', '"name" must be 1 to 100 characters.', 'name');
  if (/[\u0000-\u001f\u007f]/.test(trimmed)) return fail('BAD_USER_INPUT', '"name" may not contain control characters.', 'name');
  return null;
}

export const isUuid = (id: string) => /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(id);

export function encodeCursor(at: Date, id: string) {
  return Buffer.from(`${at.toISOString()}|${id}`).toString('base64url');
}

export function decodeCursor(cursor: string): { at: Date; id: string } | null {
  const [iso, id] = Buffer.from(cursor, 'base64url').toString('utf8').split('|');
  const at = new Date(iso);
  return id && isUuid(id) && !Number.isNaN(at.getTime()) ? { at, id } : null;
}

/** Before/after values of what changed, for an audit row. */
export function diff(before: Record<string, unknown>, after: Record<string, unknown>, action: string) {
  const changed = Object.keys(after).filter((k) => JSON.stringify(before[k]) !== JSON.stringify(after[k]));
  return {
    action,
    before: Object.fromEntries(changed.map((k) => [k, before[k]])),
    after: Object.fromEntries(changed.map((k) => [k, after[k]])),
  };
}
