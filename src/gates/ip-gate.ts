import { RateLimiterRes } from 'rate-limiter-flexible';
import type { LimiterStore } from '../counting/store';
import { addressBucket } from './addresses';
import type { Ask, GroupOutcome } from '../counting/take';
import { Refusal, WindowGate, retryAfterMs } from '../counting/window-gate';

/** One request's IP check (see IpGate.check). */
export type IpCheck = {
  /** The verdict, taking the request's point now if no take has carried it yet. */
  run(): Promise<IpVerdict>;
  /** run(), and the failed-authentication block: for a request whose key is still to be checked. */
  guard(): Promise<IpVerdict>;
  /** True until the verdict is decided: then `ask()` may ride along in another take. */
  pending(): boolean;
  /** The verdict, if it is already known (no promise to wait on). */
  known(): IpVerdict | undefined;
  ask(): Ask;
  /** Records the verdict from a take whose group was `[ask()]`, and returns it. */
  decided(outcome: GroupOutcome): IpVerdict;
};

export type IpVerdict = { ok: true } | { ok: false; reason: 'rate' | 'auth-failures' | 'store'; limit: number; msBeforeNext: number };

/**
 * The first gate: a per-IP request budget (checked before any database lookup; for a key this
 * instance has already verified, together with the operation budget), and a stricter
 * per-IP budget of failed authentications that blocks the address for a while once spent
 * (brute-force protection, OWASP API2). The block is checked wherever a guess could be tested
 * (a key not already verified by this instance), so it costs a valid, cached key nothing.
 * Failed authentication never touches any key's budget. Both count an IPv6 client by its network
 * (IPV6_PREFIX_LENGTH), so rotating through the addresses of one's own /64 buys nothing.
 */
export class IpGate {
  private readonly requests: WindowGate;
  private readonly window: { limit: number; duration: number };

  constructor(
    private readonly store: LimiterStore,
    private readonly options: {
      requests: { points: number; duration: number };
      authFailures: { points: number; duration: number; blockDuration: number };
      /** An IPv6 client is counted by its network of this length (addresses.ts, addressBucket); default 56. */
      ipv6PrefixLength?: number;
    },
  ) {
    this.requests = new WindowGate(store, 'tg:ip');
    this.window = { limit: options.requests.points, duration: options.requests.duration };
  }

  private get failures() {
    const { points, duration } = this.options.authFailures;
    return this.store.fixedWindowLimiter({ keyPrefix: 'tg:authfail', points, duration });
  }

  async admit(ip: string): Promise<IpVerdict> {
    try {
      await this.requests.consume(ip, [this.window], 1);
      return { ok: true };
    } catch (e) {
      return this.refusal(e);
    }
  }

  /** The request's one point, to be taken together with other budgets in one store take. */
  ask(ip: string): Ask {
    return { limiter: this.requests.limiterFor(this.window), key: ip, points: 1, limit: this.window.limit };
  }

  /** The verdict for a take whose group was `[ask(ip)]`. */
  verdictOf(outcome: GroupOutcome): IpVerdict {
    if (outcome.ok || outcome.refusedAt !== 0) return { ok: true };
    return this.refusal(new Refusal(this.window, retryAfterMs(outcome.states[0], 1, this.window), 0));
  }

  /**
   * The IP check of one request, decided once: on its own (no key, or one to look up), or —
   * for a key this instance has verified — inside the operation's take, in the same round trip.
   */
  check(ip: string): IpCheck {
    return new OneIpCheck(this, this.bucketOf(ip));
  }

  /** Who the address is counted as: an IPv4 address, or an IPv6 address's network. */
  bucketOf(ip: string): string {
    return addressBucket(ip, this.options.ipv6PrefixLength ?? 56);
  }

  private refusal(e: unknown): IpVerdict {
    if (e instanceof Refusal) return { ok: false, reason: 'rate', limit: this.window.limit, msBeforeNext: e.msBeforeNext };
    return { ok: false, reason: 'store', limit: 0, msBeforeNext: 1000 }; // closed mode: the gate refused for the store
  }

  /** Whether the address is blocked for failed authentications. */
  async blocked(ip: string): Promise<IpVerdict> {
    try {
      const failures = await this.failures.get(ip);
      const limit = this.options.authFailures.points;
      if (failures && failures.consumedPoints >= limit) return { ok: false, reason: 'auth-failures', limit, msBeforeNext: failures.msBeforeNext };
      return { ok: true };
    } catch {
      return this.store.failureMode === 'closed' ? { ok: false, reason: 'store', limit: 0, msBeforeNext: 1000 } : { ok: true };
    }
  }

  /** Counts one failed authentication; the one that spends the budget blocks the IP. */
  async recordAuthFailure(address: string): Promise<void> {
    const { points, blockDuration } = this.options.authFailures;
    const ip = this.bucketOf(address);
    try {
      const res = await this.failures.consume(ip);
      if (res.consumedPoints >= points) await this.failures.block(ip, blockDuration);
    } catch (e) {
      if (e instanceof RateLimiterRes) await this.failures.block(ip, blockDuration).catch(() => undefined);
      // store down: the failure is not counted; the request is refused anyway.
    }
  }
}

/** IpGate.check's answer: a class, not closures, because every request makes one. */
class OneIpCheck implements IpCheck {
  private verdict?: Promise<IpVerdict>;
  /** The verdict once known: kept as a value, made a promise only if someone awaits it. */
  private decision?: IpVerdict;
  constructor(
    private readonly gate: IpGate,
    private readonly ip: string,
  ) {}
  run() {
    return (this.verdict ??= this.decision ? Promise.resolve(this.decision) : this.gate.admit(this.ip).then((verdict) => (this.decision = verdict)));
  }
  async guard(): Promise<IpVerdict> {
    const [rate, block] = await Promise.all([this.run(), this.gate.blocked(this.ip)]);
    return rate.ok ? block : rate;
  }
  pending() {
    return this.verdict === undefined && this.decision === undefined;
  }
  known() {
    return this.decision;
  }
  ask() {
    return this.gate.ask(this.ip);
  }
  decided(outcome: GroupOutcome) {
    return (this.decision = this.gate.verdictOf(outcome));
  }
}
