import { RateLimiterRes } from 'rate-limiter-flexible';
import type { LimiterStore } from './store';

export type IpVerdict = { ok: true } | { ok: false; reason: 'rate' | 'auth-failures' | 'store'; limit: number; msBeforeNext: number };

/**
 * The first gate: a per-IP request budget, and a stricter per-IP budget of failed
 * authentications that blocks the address for a while once spent (brute-force protection,
 * OWASP API2). Failed authentication never touches any key's budget.
 */
export class IpGate {
  constructor(
    private readonly store: LimiterStore,
    private readonly options: {
      requests: { points: number; duration: number };
      authFailures: { points: number; duration: number; blockDuration: number };
    },
  ) {}

  private get requests() {
    return this.store.limiter({ keyPrefix: 'tg:ip', ...this.options.requests });
  }

  private get failures() {
    const { points, duration } = this.options.authFailures;
    return this.store.limiter({ keyPrefix: 'tg:authfail', points, duration });
  }

  async admit(ip: string): Promise<IpVerdict> {
    try {
      const [blocked, request] = await Promise.all([
        this.failures.get(ip),
        this.requests.consume(ip).catch((e: unknown) => {
          if (e instanceof RateLimiterRes) return e;
          throw e;
        }),
      ]);
      const failureLimit = this.options.authFailures.points;
      if (blocked && blocked.consumedPoints >= failureLimit) {
        return { ok: false, reason: 'auth-failures', limit: failureLimit, msBeforeNext: blocked.msBeforeNext };
      }
      if (request.consumedPoints > this.options.requests.points) {
        return { ok: false, reason: 'rate', limit: this.options.requests.points, msBeforeNext: request.msBeforeNext };
      }
      return { ok: true };
    } catch {
      return this.store.failureMode === 'closed' ? { ok: false, reason: 'store', limit: 0, msBeforeNext: 1000 } : { ok: true };
    }
  }

  /** Counts one failed authentication; the one that spends the budget blocks the IP. */
  async recordAuthFailure(ip: string): Promise<void> {
    const { points, blockDuration } = this.options.authFailures;
    try {
      const res = await this.failures.consume(ip);
      if (res.consumedPoints >= points) await this.failures.block(ip, blockDuration);
    } catch (e) {
      if (e instanceof RateLimiterRes) await this.failures.block(ip, blockDuration).catch(() => undefined);
      // store down: the failure is not counted; the request is refused anyway.
    }
  }
}
