import { RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import type { LimiterStore } from './store';
import type { Ask, CounterState, GroupOutcome } from './take';

export type Window = { limit: number; duration: number };

/** Where a key stands after an admitted call: the tightest window's numbers, and when each window ends (for a give-back). */
export type Taken = { remaining: number; msBeforeNext: number; window: Window; expiresAt: number[] };

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

/**
 * One family of counters (the IP budget, the operation budget, the field budgets), each key with
 * one or more windows (burst + sustained). A call is admitted only if every window admits it, and a
 * refused call takes nothing from any window: a burst refusal never eats into the daily budget.
 * The counting itself is the store's `take` (take.ts): atomic, and one round trip per turn on Redis.
 */
export class WindowGate {
  /** duration → limiter: found on every request without building a string. */
  private readonly limiters = new Map<number, RateLimiterAbstract>();

  constructor(
    private readonly store: LimiterStore,
    private readonly keyPrefix: string,
  ) {}

  /**
   * The rate-limiter-flexible limiter that keeps one window length's counters (read directly).
   * Named `prefix:duration`, never by the limit: the limit comes with each ask, so raising or
   * lowering it — a key's override, BUDGET_POINTS, a deploy with a changed @rateLimit — counts on
   * from what was spent, and instances with different limits during a rolling deploy share one count.
   */
  limiterFor(window: Window): RateLimiterAbstract {
    let limiter = this.limiters.get(window.duration);
    if (!limiter) {
      limiter = this.store.limiter({ keyPrefix: `${this.keyPrefix}:${window.duration}`, points: window.limit, duration: window.duration });
      this.limiters.set(window.duration, limiter);
    }
    return limiter;
  }

  /** The asks that take `points` from every window of `key`, for a store take. */
  asks(key: string, windows: readonly Window[], points: number): Ask[] {
    return windows.map((window) => ({ limiter: this.limiterFor(window), key, points, limit: window.limit }));
  }

  /** Takes `points` from every window of `key`, or nothing; throws a Refusal. */
  async consume(key: string, windows: readonly Window[], points: number): Promise<Taken> {
    const [outcome] = await this.store.take([{ asks: this.asks(key, windows, points), required: true }]);
    return verdict(outcome, windows);
  }

  /** Gives points back to every window they were taken from (a refusal found after the take); a window that ended gets nothing. */
  async release(key: string, windows: readonly Window[], points: number, expiresAt: readonly number[]): Promise<void> {
    await this.store.giveBack(windows.map((w, i) => ({ limiter: this.limiterFor(w), key, points, expiresAt: expiresAt[i] ?? 0 }))).catch(() => undefined);
  }
}

/** A take's outcome for one key's windows: where the tightest window stands, or the Refusal. */
export function verdict(outcome: GroupOutcome, windows: readonly Window[]): Taken {
  if (!outcome.ok) {
    const at = Math.max(0, outcome.refusedAt);
    const window = windows[at];
    const state: CounterState | undefined = outcome.states[at];
    throw new Refusal(window, state?.msBeforeNext ?? window.duration * 1000, Math.max(0, window.limit - (state?.used ?? 0)));
  }
  let tightest = 0;
  const left = (i: number) => windows[i].limit - outcome.states[i].used;
  for (let i = 1; i < windows.length; i++) if (left(i) < left(tightest)) tightest = i;
  return { remaining: Math.max(0, left(tightest)), msBeforeNext: outcome.states[tightest].msBeforeNext, window: windows[tightest], expiresAt: expiriesOf(outcome.states) };
}

/** When each counter's window ends, on this process's clock, from a take's answer. */
export function expiriesOf(states: readonly CounterState[]): number[] {
  const now = Date.now();
  return states.map((state) => now + state.msBeforeNext);
}
