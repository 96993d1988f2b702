import { RateLimiterRes } from 'rate-limiter-flexible';
import { serviceUnavailable } from '../errors';
import type { LimiterStore } from './store';

export type Window = { limit: number; duration: number };

/** Thrown (as rate-limiter-flexible does) when a resolution is refused; carries which window said no. */
export class FieldRefusal extends RateLimiterRes {
  constructor(
    readonly coordinate: string,
    readonly window: Window,
    msBeforeNext: number,
  ) {
    super(0, msBeforeNext, window.limit, false);
  }
}

type Item = { points: number; resolve: () => void; reject: (reason: unknown) => void };
type Batch = { keyId: string; coordinate: string; windows: readonly Window[]; items: Item[] };

/**
 * Decides field-level budgets. Every resolution of a limited field asks `consume`; the calls
 * that one execution step makes for the same key and field (50 list items, three aliases) are
 * coalesced into one store call per window, and then split exactly: the first items that fit
 * are admitted, the rest refused, and whatever was taken for the refused ones is given back.
 *
 * Several windows per field (burst + sustained) are checked together. A call is admitted only
 * if every window admits it, and the points of a refused call are returned to every window, so
 * a burst refusal never eats into the daily budget (RateLimiterUnion has no such rollback).
 */
export class FieldGate {
  private readonly pending = new Map<string, Batch>();
  private flushScheduled = false;
  /** Store calls made, for tests and the bench (round trips do not grow with list length). */
  storeCalls = 0;

  constructor(private readonly store: LimiterStore) {}

  /** The limiter that keeps one window's counters; shared with `usage` so reads see the same keys. */
  limiterFor(window: Window) {
    return this.store.limiter({ keyPrefix: `tg:field:${window.limit}:${window.duration}`, points: window.limit, duration: window.duration });
  }

  static storeKey(keyId: string, coordinate: string) {
    return `${keyId}:${coordinate}`;
  }

  consume(keyId: string, coordinate: string, windows: readonly Window[], points: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const batchKey = FieldGate.storeKey(keyId, coordinate);
      let batch = this.pending.get(batchKey);
      if (!batch) this.pending.set(batchKey, (batch = { keyId, coordinate, windows, items: [] }));
      batch.items.push({ points, resolve, reject });
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        // nextTick runs once the current burst of promise jobs has drained, i.e. after every
        // sibling resolution of this execution step has asked.
        process.nextTick(() => this.flush());
      }
    });
  }

  private flush() {
    this.flushScheduled = false;
    const batches = [...this.pending.values()];
    this.pending.clear();
    for (const batch of batches) void this.settle(batch);
  }

  private async settle(batch: Batch) {
    const key = FieldGate.storeKey(batch.keyId, batch.coordinate);
    const total = batch.items.reduce((sum, item) => sum + item.points, 0);
    const outcomes = await Promise.all(
      batch.windows.map(async (window) => {
        const limiter = this.limiterFor(window);
        this.storeCalls++;
        try {
          const res = await limiter.consume(key, total);
          return { window, limiter, res, failed: false as const };
        } catch (thrown) {
          if (thrown instanceof RateLimiterRes) return { window, limiter, res: thrown, failed: false as const };
          return { window, limiter, res: null, failed: true as const, error: thrown };
        }
      }),
    );

    if (outcomes.some((o) => o.failed)) return this.settleOnStoreFailure(batch, key, total, outcomes);

    // How many leading items fit in every window; the counter held `consumed - total` before us.
    let admitted = batch.items.length;
    let limiting = outcomes[0];
    for (const o of outcomes) {
      const before = o.res!.consumedPoints - total;
      let capacity = o.window.limit - before;
      let fits = 0;
      while (fits < batch.items.length && capacity >= batch.items[fits].points) capacity -= batch.items[fits++].points;
      if (fits < admitted) [admitted, limiting] = [fits, o];
    }
    const admittedPoints = batch.items.slice(0, admitted).reduce((sum, item) => sum + item.points, 0);
    const refund = total - admittedPoints;
    if (refund > 0) {
      this.storeCalls += outcomes.length;
      await Promise.all(outcomes.map((o) => o.limiter.reward(key, refund).catch(() => undefined)));
    }
    batch.items.forEach((item, i) => {
      if (i < admitted) item.resolve();
      else item.reject(new FieldRefusal(batch.coordinate, limiting.window, limiting.res!.msBeforeNext));
    });
  }

  private async settleOnStoreFailure(batch: Batch, key: string, total: number, outcomes: { limiter: { reward(k: string, p: number): Promise<unknown> }; failed: boolean }[]) {
    // `insurance` never gets here: rate-limiter-flexible answers from the insurance limiter.
    if (this.store.failureMode === 'open') {
      batch.items.forEach((item) => item.resolve());
      return;
    }
    // closed: nothing is admitted, so give back what the windows that did answer took.
    await Promise.all(outcomes.filter((o) => !o.failed).map((o) => o.limiter.reward(key, total).catch(() => undefined)));
    const error = serviceUnavailable('Rate limiting is temporarily unavailable; try again shortly.');
    batch.items.forEach((item) => item.reject(error));
  }
}
