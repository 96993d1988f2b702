/**
 * How a window is counted: the weighted two-bucket ("sliding window") counter that Kong, Unkey
 * and Cloudflare use. Time is cut into buckets as long as the window, aligned to the epoch (so
 * every instance and the store agree on them without talking). A counter keeps the points taken in
 * the current bucket and in the one before; the points used now are the current bucket's plus the
 * previous bucket's weighted by the share of it that still lies within one window of now.
 *
 * Why not fixed windows: there a client spends the limit just before a reset and again just
 * after — twice the limit within a millisecond, at a moment it can read from the headers. Here
 * what was spent fades out over the next window instead of vanishing at once. The bound (proved
 * in the README's design notes): in any span of T ≤ one window, at most limit × (1 + T/window)
 * points are admitted — twice the limit only when spread over a whole window, never in a burst.
 *
 * The Redis take (take.ts) counts the same way in Lua; this module is the arithmetic for memory
 * counters, for reading a reply, and for telling a refused client how long to wait.
 */

/** Where a counter stands: its buckets' points as of `msLeft` before the current bucket ends. */
export type WindowCount = {
  /** The current bucket's number: floor(time / window length). A give-back names it. */
  bucket: number;
  /** Points taken in the bucket before the current one. */
  previous: number;
  /** Points taken in the current bucket. */
  current: number;
  /** Milliseconds until the current bucket ends. */
  msLeft: number;
};

export const bucketOf = (now: number, windowMs: number) => Math.floor(now / windowMs);

/**
 * A calendar quota's period: a UTC day or month, numbered (days since the epoch, or months since
 * year 0), and the ms until it ends. A quota does not slide: its point is to reset at 00:00 UTC.
 */
export type Calendar = 'DAY' | 'MONTH';
/** A quota's nominal length (what its counter family is named and swept by; its period is the calendar's). */
export const CALENDAR_MS: Record<Calendar, number> = { DAY: 86_400_000, MONTH: 31 * 86_400_000 };
export function calendarPeriod(calendar: Calendar, now: number): { bucket: number; msLeft: number } {
  const at = new Date(now);
  if (calendar === 'DAY') {
    const bucket = Math.floor(now / 86_400_000);
    return { bucket, msLeft: (bucket + 1) * 86_400_000 - now };
  }
  const year = at.getUTCFullYear();
  const month = at.getUTCMonth();
  return { bucket: year * 12 + month, msLeft: Date.UTC(year, month + 1, 1) - now };
}

/**
 * The points a counter holds now: the current bucket's, plus the previous bucket's share that is
 * still within one window (rounded up, so a whole number that never under-counts). The same
 * integer arithmetic as the Lua take.
 */
export const usedOf = (previous: number, current: number, msLeft: number, windowMs: number) =>
  current + (previous > 0 ? Math.floor((previous * msLeft + windowMs - 1) / windowMs) : 0);

/**
 * How long until `points` fit under `limit`, if nothing else is taken meanwhile: the previous
 * bucket's weight falls linearly to the bucket's end; after it, the current bucket's points fade
 * the same way. Points that can never fit (more than the limit) get a whole window more.
 */
export function msUntilFits(count: WindowCount, points: number, limit: number, windowMs: number): number {
  const { previous, current, msLeft } = count;
  const room = limit - points - current;
  if (room >= 0) {
    // The previous bucket's share must fall to `room`: previous × (msLeft − t) / window ≤ room.
    if (previous <= room) return 0;
    return Math.max(0, Math.ceil(msLeft - (room * windowMs) / previous));
  }
  const roomNext = limit - points;
  if (roomNext < 0) return msLeft + windowMs;
  if (current <= roomNext) return msLeft;
  return msLeft + Math.ceil(windowMs - (roomNext * windowMs) / current);
}

type Slot = { bucket: number; current: number; previous: number; windowMs: number };

/** Above this many counters, stale ones are swept — then not again until the map has doubled (amortised O(1)). */
const SWEEP_ABOVE = 10_000;

/**
 * Counters in process memory: the memory store's, and the insurance counters a Redis store
 * decides on while Redis is down. No timer per counter: a counter two buckets old counts
 * nothing, and is swept when the map grows.
 */
export class MemoryCounters {
  private readonly slots = new Map<string, Slot>();
  private sweepAbove = SWEEP_ABOVE;

  /** A counter as it stands at `now` (nothing taken: zeros); `period`: a calendar quota's (no previous bucket). */
  read(key: string, windowMs: number, now: number, period?: { bucket: number; msLeft: number }): WindowCount {
    const bucket = period ? period.bucket : bucketOf(now, windowMs);
    const msLeft = period ? period.msLeft : (bucket + 1) * windowMs - now;
    const slot = this.slots.get(key);
    if (period) return { bucket, previous: 0, current: slot && slot.windowMs === windowMs && slot.bucket === bucket ? slot.current : 0, msLeft };
    if (!slot || slot.windowMs !== windowMs || slot.bucket < bucket - 1) return { bucket, previous: 0, current: 0, msLeft };
    if (slot.bucket === bucket - 1) return { bucket, previous: slot.current, current: 0, msLeft };
    return { bucket, previous: slot.previous, current: slot.current, msLeft };
  }

  /** Adds points to the current bucket of a counter read at `count`. */
  add(key: string, windowMs: number, count: WindowCount, points: number) {
    const slot = this.slots.get(key);
    if (slot && slot.windowMs === windowMs && slot.bucket === count.bucket) {
      slot.current += points;
      return;
    }
    if (!slot && this.slots.size > this.sweepAbove) this.sweep(count.bucket * windowMs);
    this.slots.set(key, { bucket: count.bucket, previous: count.previous, current: count.current + points, windowMs });
  }

  /**
   * Gives points back to the bucket they were taken from — the current one, or the previous one
   * (where they still count, weighted) — never below zero. Anything older counts nothing: null.
   */
  giveBack(key: string, windowMs: number, bucket: number, points: number, now: number, period?: { bucket: number; msLeft: number }): WindowCount | null {
    const count = this.read(key, windowMs, now, period);
    if (bucket === count.bucket) count.current = Math.max(0, count.current - points);
    else if (bucket === count.bucket - 1 && count.previous > 0) count.previous = Math.max(0, count.previous - points);
    else return null;
    this.slots.set(key, { bucket: count.bucket, previous: count.previous, current: count.current, windowMs });
    return count;
  }

  private sweep(now: number) {
    const month = calendarPeriod('MONTH', now).bucket;
    for (const [key, slot] of this.slots) if (slot.bucket < (slot.windowMs === CALENDAR_MS.MONTH ? month : bucketOf(now, slot.windowMs)) - 1) this.slots.delete(key);
    this.sweepAbove = Math.max(SWEEP_ABOVE, this.slots.size * 2);
  }
}
