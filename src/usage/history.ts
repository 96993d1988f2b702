import { and, asc, desc, eq, gte, lt, ne, sql, type SQL } from 'drizzle-orm';
import type { Database } from '../db/client';
import { NO_CONSUMER, usage, usageFields, usageRefusals, type Granularity } from '../db/schema';
import { fail, type Result } from '../keys/limits-input';

export type UsageBucket = {
  start: Date;
  operations: number;
  refused: number;
  points: number;
  refunded: number;
  errors: number;
  refusals: { gate: string; coordinate: string | null; count: number }[];
  fields: { coordinate: string; calls: number; points: number; refused: number }[];
};

/** Whose history: one key's, or a consumer's (the sum of its keys' while they were under it). */
export type UsageSubject = { keyId: string } | { consumerId: string };

const BUCKET_MS: Record<Granularity, number> = { minute: 60_000, hour: 3_600_000, day: 86_400_000 };
/** The longest range one query may ask for, per granularity (a chart's worth of buckets). */
export const MAX_RANGE: Record<Granularity, { ms: number; text: string }> = {
  minute: { ms: 86_400_000, text: '24 hours' },
  hour: { ms: 31 * 86_400_000, text: '31 days' },
  day: { ms: 731 * 86_400_000, text: '731 days' },
};

/** Checks a range: `from` not after `to`, and not longer than the granularity allows. */
export function checkRange(from: Date, to: Date, granularity: Granularity): Result<{ from: Date; to: Date }> {
  if (Number.isNaN(from.getTime()) || Number.isNaN(to.getTime())) return fail('BAD_USER_INPUT', '"from" and "to" must be ISO-8601 date-times.', 'from');
  if (from > to) return fail('BAD_USER_INPUT', '"from" must not be after "to".', 'from');
  const limit = MAX_RANGE[granularity];
  if (to.getTime() - from.getTime() > limit.ms) {
    return fail('BAD_USER_INPUT', `A ${granularity.toUpperCase()} history covers at most ${limit.text}; ask for a shorter range or a coarser granularity.`, 'to');
  }
  // From the start of the bucket `from` falls in.
  return { ok: true, value: { from: new Date(Math.floor(from.getTime() / BUCKET_MS[granularity]) * BUCKET_MS[granularity]), to } };
}

/** Reads usage history back; buckets with nothing in them are left out. */
export class UsageHistory {
  constructor(
    private readonly db: Database,
    private readonly now: () => number = Date.now,
  ) {}

  async read(subject: UsageSubject, from: Date, to: Date, granularity: Granularity): Promise<UsageBucket[]> {
    const where = (table: typeof usage | typeof usageFields | typeof usageRefusals) =>
      and('keyId' in subject ? eq(table.keyId, subject.keyId) : eq(table.consumerId, subject.consumerId), eq(table.granularity, granularity), gte(table.start, from), lt(table.start, to));
    const total = (column: SQL | unknown) => sql<number>`sum(${column})::float8`;
    const [totals, fields, refusals] = await Promise.all([
      this.db
        .select({ start: usage.start, operations: total(usage.operations), refused: total(usage.refused), points: total(usage.points), refunded: total(usage.refunded), errors: total(usage.errors) })
        .from(usage).where(where(usage)).groupBy(usage.start).orderBy(asc(usage.start)),
      this.db
        .select({ start: usageFields.start, coordinate: usageFields.coordinate, calls: total(usageFields.calls), points: total(usageFields.points), refused: total(usageFields.refused) })
        .from(usageFields).where(where(usageFields)).groupBy(usageFields.start, usageFields.coordinate).orderBy(asc(usageFields.coordinate)),
      this.db
        .select({ start: usageRefusals.start, gate: usageRefusals.gate, coordinate: usageRefusals.coordinate, count: total(usageRefusals.count) })
        .from(usageRefusals).where(where(usageRefusals)).groupBy(usageRefusals.start, usageRefusals.gate, usageRefusals.coordinate).orderBy(asc(usageRefusals.gate), asc(usageRefusals.coordinate)),
    ]);
    const buckets = new Map<number, UsageBucket>();
    const bucketAt = (start: Date) => {
      let bucket = buckets.get(start.getTime());
      if (!bucket) {
        bucket = { start, operations: 0, refused: 0, points: 0, refunded: 0, errors: 0, refusals: [], fields: [] };
        buckets.set(start.getTime(), bucket);
      }
      return bucket;
    };
    for (const row of totals) Object.assign(bucketAt(row.start), { operations: Number(row.operations), refused: Number(row.refused), points: Number(row.points), refunded: Number(row.refunded), errors: Number(row.errors) });
    for (const row of fields) bucketAt(row.start).fields.push({ coordinate: row.coordinate, calls: Number(row.calls), points: Number(row.points), refused: Number(row.refused) });
    for (const row of refusals) bucketAt(row.start).refusals.push({ gate: row.gate, coordinate: row.coordinate || null, count: Number(row.count) });
    return [...buckets.values()].sort((a, b) => a.start.getTime() - b.start.getTime());
  }

  /**
   * The consumers (or consumer-less keys… every key, by `KEY`) that spent the most points in a
   * range, from hourly buckets (daily ones past the hours' retention or a 31-day range).
   */
  async top(by: 'CONSUMER' | 'KEY', from: Date, to: Date, first: number, hourRetentionMs: number): Promise<{ id: string; points: number; operations: number; refused: number }[]> {
    const { granularity, start } = this.coarse(from, to, hourRetentionMs);
    const id = by === 'CONSUMER' ? usage.consumerId : usage.keyId;
    const points = sql<number>`sum(${usage.points})::float8`;
    const rows = await this.db
      .select({ id, points, operations: sql<number>`sum(${usage.operations})::float8`, refused: sql<number>`sum(${usage.refused})::float8` })
      .from(usage)
      .where(and(eq(usage.granularity, granularity), gte(usage.start, start), lt(usage.start, to), by === 'CONSUMER' ? ne(usage.consumerId, NO_CONSUMER) : undefined))
      .groupBy(id)
      .orderBy(desc(points), asc(id))
      .limit(first);
    return rows.map((r) => ({ id: r.id!, points: Number(r.points), operations: Number(r.operations), refused: Number(r.refused) }));
  }

  /** Every key's usage in a range, summed, from the buckets `top` reads. */
  async totals(from: Date, to: Date, hourRetentionMs: number): Promise<{ points: number; operations: number; refused: number }> {
    const { granularity, start } = this.coarse(from, to, hourRetentionMs);
    const total = (column: unknown) => sql<number>`coalesce(sum(${column}), 0)::float8`;
    const [row] = await this.db
      .select({ points: total(usage.points), operations: total(usage.operations), refused: total(usage.refused) })
      .from(usage)
      .where(and(eq(usage.granularity, granularity), gte(usage.start, start), lt(usage.start, to)));
    return { points: Number(row.points), operations: Number(row.operations), refused: Number(row.refused) };
  }

  /** Hourly buckets, or daily ones past 31 days or the hours' retention; from the start of `from`'s bucket. */
  private coarse(from: Date, to: Date, hourRetentionMs: number): { granularity: Granularity; start: Date } {
    const granularity: Granularity = to.getTime() - from.getTime() > MAX_RANGE.hour.ms || from.getTime() < this.now() - hourRetentionMs ? 'day' : 'hour';
    const size = BUCKET_MS[granularity];
    return { granularity, start: new Date(Math.floor(from.getTime() / size) * size) };
  }
}
