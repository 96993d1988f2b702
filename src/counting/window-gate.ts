import { RateLimiterRes } from 'rate-limiter-flexible';
import { CALENDAR_MS, msUntilFits, type Calendar } from './sliding-window';
import type { LimiterStore } from './store';
import type { Ask, CounterFamily, CounterState, GroupOutcome } from './take';

/**
 * `limit` points per `duration` seconds, sliding; or, with `period`, per UTC calendar day or month
 * (a quota: `duration` is then nominal). `cap`: counted under the ask's cap key (a key's own cap
 * under its consumer).
 */
export type Window = { limit: number; duration: number; cap?: true; period?: Calendar };

/**
 * Where a key stands after an admitted call: the tightest window's numbers (`msBeforeNext`: when
 * its current bucket ends), and the bucket each window took from (for a give-back).
 */
export type Taken = { remaining: number; msBeforeNext: number; window: Window; buckets: number[] };

/**
 * Thrown (as rate-limiter-flexible does, so graphql-rate-limit-directive recognises it) when a
 * call is refused; carries the window that said no, what is left in it, and (`msBeforeNext`)
 * how long until the call would fit.
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

/**
 * One family of counters (the IP budget, the operation budget, the field budgets), each key with
 * one or more windows (burst + sustained). A call is admitted only if every window admits it, and a
 * refused call takes nothing from any window: a burst refusal never eats into the daily budget.
 * The counting itself is the store's `take` (take.ts): atomic, and one round trip per turn on Redis.
 */
export class WindowGate {
  /** duration (or a quota's period) → counter family: found on every request without building a string. */
  private readonly limiters = new Map<number | Calendar, CounterFamily>();

  constructor(
    private readonly store: LimiterStore,
    private readonly keyPrefix: string,
  ) {}

  /**
   * The counters of one window length. Named `prefix:<duration>s`, never by the limit: the limit
   * comes with each ask, so raising or lowering it — a key's override, BUDGET_POINTS, a deploy
   * with a changed @rateLimit — counts on from what was spent, and instances with different limits
   * during a rolling deploy share one count. (The `s` is the sliding counters' hash; the fixed
   * windows of earlier releases were strings named without it.)
   */
  limiterFor(window: Window): CounterFamily {
    const { period } = window;
    let limiter = this.limiters.get(period ?? window.duration);
    if (!limiter) {
      limiter = period
        ? this.store.counters({ keyPrefix: `${this.keyPrefix}:${period.toLowerCase()}`, points: window.limit, duration: CALENDAR_MS[period] / 1000, calendar: period })
        : this.store.counters({ keyPrefix: `${this.keyPrefix}:${window.duration}s`, points: window.limit, duration: window.duration });
      this.limiters.set(period ?? window.duration, limiter);
    }
    return limiter;
  }

  /** The asks that take `points` from every window of `key` (a `cap` window: of `capKey`), for a store take. */
  asks(key: string, windows: readonly Window[], points: number, capKey = key): Ask[] {
    return windows.map((window) => ({ limiter: this.limiterFor(window), key: window.cap ? capKey : key, points, limit: window.limit }));
  }

  /** Takes `points` from every window of `key`, or nothing; throws a Refusal. */
  async consume(key: string, windows: readonly Window[], points: number, capKey = key): Promise<Taken> {
    const [outcome] = await this.store.take([{ asks: this.asks(key, windows, points, capKey), required: true }]);
    return verdict(outcome, windows, points);
  }

  /** Gives points back to every window, to the bucket they were taken from (a refusal found after the take). */
  async release(key: string, windows: readonly Window[], points: number, buckets: readonly number[], capKey = key): Promise<void> {
    const asks = this.asks(key, windows, points, capKey);
    await this.store.giveBack(asks.map((ask, i) => ({ limiter: ask.limiter, key: ask.key, points, bucket: buckets[i] ?? -1 }))).catch(() => undefined);
  }
}

/**
 * How long until `points` fit in a window, from a take's answer (its whole length if the take
 * said nothing). A quota's points come back all at once, when its period ends.
 */
export function retryAfterMs(state: CounterState | undefined, points: number, window: Window): number {
  if (!state) return window.duration * 1000;
  if (window.period) return state.used + points <= window.limit ? 0 : state.msLeft;
  return msUntilFits(state, points, window.limit, window.duration * 1000);
}

/** A take's outcome for one key's windows, each asked `points`: where the tightest window stands, or the Refusal. */
export function verdict(outcome: GroupOutcome, windows: readonly Window[], points: number): Taken {
  if (!outcome.ok) {
    const at = Math.max(0, outcome.refusedAt);
    const window = windows[at];
    const state: CounterState | undefined = outcome.states[at];
    throw new Refusal(window, retryAfterMs(state, points, window), Math.max(0, window.limit - (state?.used ?? 0)));
  }
  let tightest = 0;
  const left = (i: number) => windows[i].limit - outcome.states[i].used;
  for (let i = 1; i < windows.length; i++) if (left(i) < left(tightest)) tightest = i;
  return { remaining: Math.max(0, left(tightest)), msBeforeNext: outcome.states[tightest].msLeft, window: windows[tightest], buckets: bucketsOf(outcome.states) };
}

/** The bucket each counter took from, from a take's answer (for a give-back). */
export const bucketsOf = (states: readonly CounterState[]): number[] => states.map((state) => state.bucket);
