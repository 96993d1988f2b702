import { RateLimiterRes } from 'rate-limiter-flexible';
import { serviceUnavailable } from '../errors';
import type { LimiterStore } from './store';

export type Window = { limit: number; duration: number };

/** Where a key stands after an admitted call: the tightest window's numbers. */
export type Admission = { remaining: number; msBeforeNext: number; window: Window };

/**
 * Thrown (as rate-limiter-flexible does, so graphql-rate-limit-directive recognises it) when a
 * call is refused; carries the window that said no and what is left in it.
 */
export class Refusal extends RateLimiterRes {
  constructor(
    readonly window: Window,
    msBeforeNext: number,
    remaining: number,
  ) {
    super(remaining, msBeforeNext, window.limit - remaining, false);
  }
}

type Item = { points: number; resolve: (admission: Admission) => void; reject: (reason: unknown) => void };
type Batch = { key: string; windows: readonly Window[]; items: Item[] };
type Outcome = { window: Window; res: RateLimiterRes | null; failed: boolean };

/**
 * The engine behind every gate. Calls for the same key that arrive in the same turn of the event
 * loop — 50 list items, three aliases, or many requests of one busy client — are coalesced into
 * ONE store call per window, then split exactly: the leading calls that fit are admitted, the
 * rest refused, and whatever was taken for the refused ones is given back (`reward`).
 *
 * Several windows (burst + sustained) are checked together: a call is admitted only if every
 * window admits it, and a refused call's points go back to every window, so a burst refusal never
 * eats into the daily budget (RateLimiterUnion has no such rollback). While a batch's refund is in
 * flight another instance may see the counter high for one round trip: that can only refuse
 * early, never admit more than the limit.
 */
export class CoalescingGate {
  private readonly pending = new Map<string, Batch>();
  private flushScheduled = false;
  /** Store calls made, for tests and the bench. */
  storeCalls = 0;

  constructor(
    private readonly store: LimiterStore,
    private readonly keyPrefix: string,
  ) {}

  /** The limiter that keeps one window's counters (also read, never spent, by `usage`). */
  limiterFor(window: Window) {
    return this.store.limiter({ keyPrefix: `${this.keyPrefix}:${window.limit}:${window.duration}`, points: window.limit, duration: window.duration });
  }

  consume(key: string, windows: readonly Window[], points: number): Promise<Admission> {
    return new Promise((resolve, reject) => {
      let batch = this.pending.get(key);
      if (!batch) this.pending.set(key, (batch = { key, windows, items: [] }));
      batch.items.push({ points, resolve, reject });
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        // setImmediate runs after this turn's I/O callbacks and their promise jobs: every call
        // made in this turn, by this request or another, is in the batch.
        setImmediate(() => this.flush());
      }
    });
  }

  private flush() {
    this.flushScheduled = false;
    const batches = [...this.pending.values()];
    this.pending.clear();
    for (const batch of batches) {
      // A bug here must fail the calls that wait on it, never become an unhandled rejection.
      this.settle(batch).catch((error: unknown) => batch.items.forEach((item) => item.reject(error)));
    }
  }

  private async settle(batch: Batch) {
    const total = batch.items.reduce((sum, item) => sum + item.points, 0);
    this.storeCalls += batch.windows.length;
    const outcomes: Outcome[] = await Promise.all(
      batch.windows.map((window) =>
        this.limiterFor(window)
          .consume(batch.key, total)
          .then(
            (res) => ({ window, res, failed: false }),
            (thrown: unknown) => (thrown instanceof RateLimiterRes ? { window, res: thrown, failed: false } : { window, res: null, failed: true }),
          ),
      ),
    );
    if (outcomes.some((o) => o.failed)) return this.settleOnStoreFailure(batch, total, outcomes);

    // For every window: the counter held `consumed - total` before this batch.
    const windows = outcomes.map((o) => ({ ...o, before: o.res!.consumedPoints - total }));
    let admitted = batch.items.length;
    let limiting = windows[0];
    for (const w of windows) {
      let capacity = w.window.limit - w.before;
      let fits = 0;
      while (fits < batch.items.length && capacity >= batch.items[fits].points) capacity -= batch.items[fits++].points;
      if (fits < admitted) [admitted, limiting] = [fits, w];
    }
    // Every window loses the same points, so the one with least room before stays the tightest.
    const tightest = windows.reduce((a, b) => (b.window.limit - b.before < a.window.limit - a.before ? b : a));
    let spent = 0;
    for (const item of batch.items.slice(0, admitted)) {
      spent += item.points;
      item.resolve({ remaining: Math.max(0, tightest.window.limit - tightest.before - spent), msBeforeNext: tightest.res!.msBeforeNext, window: tightest.window });
    }
    const refund = total - spent;
    if (refund > 0) {
      this.storeCalls += windows.length;
      await Promise.all(windows.map((w) => this.limiterFor(w.window).reward(batch.key, refund).catch(() => undefined)));
    }
    const left = Math.max(0, limiting.window.limit - limiting.before - spent);
    for (const item of batch.items.slice(admitted)) item.reject(new Refusal(limiting.window, limiting.res!.msBeforeNext, left));
  }

  private async settleOnStoreFailure(batch: Batch, total: number, outcomes: Outcome[]) {
    // `insurance` never gets here: rate-limiter-flexible answers from the insurance limiter.
    if (this.store.failureMode === 'open') {
      const window = batch.windows[0];
      for (const item of batch.items) item.resolve({ remaining: window.limit, msBeforeNext: window.duration * 1000, window });
      return;
    }
    // closed: nothing is admitted, so give back what the windows that did answer took.
    await Promise.all(outcomes.filter((o) => !o.failed).map((o) => this.limiterFor(o.window).reward(batch.key, total).catch(() => undefined)));
    const error = serviceUnavailable('Rate limiting is temporarily unavailable; try again shortly.');
    for (const item of batch.items) item.reject(error);
  }
}
