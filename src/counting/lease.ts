import { limitOf, scriptPoints as points, type CounterFamily, type CounterState, type Group, type GroupOutcome } from './take';

/**
 * Leases (LIMITS_LEASE_PERCENT, off by default): when a take goes to Redis anyway, each of its
 * counters also takes a slice of its window's limit ahead of need — a fixed percentage, and never
 * past the limit — which this instance then spends in process memory. A request whose every
 * counter has a live lease that covers it is decided here, without a round trip; any other goes
 * to Redis whole, as without leases.
 *
 * The bound: Redis never grants more than the limit, so leases never let a window admit more
 * than it would without them, on any number of instances. The price is refusing early: points leased by one instance
 * and not spent are not available to the others until their bucket fades out — at most one slice per
 * other instance, per window (with 1 % and three instances, 2 % of the window). One instance alone
 * stays exact: a take its lease cannot cover gives the lease back in the same script call, so the
 * lease and what Redis has left count together. A slice below one point (a small limit) means
 * no lease, so small budgets stay exact everywhere. Redis counts leased points as used; what this
 * instance reads back (`seen`) leaves its own unspent ones out. A graceful stop gives unspent
 * leases back, so a rolling restart strands nothing.
 */
type Lease = {
  limiter: CounterFamily;
  /** The limit the lease was taken under: a key whose override changed it decides remotely again. */
  limit: number;
  /** Leased points not yet spent. */
  remaining: number;
  /** The counter's value in Redis when this instance last heard from it (leased points included). */
  redisUsed: number;
  /** When the lease's bucket ends, on leaseClock(): a lease never depends on the wall clock not stepping back. */
  expiresAt: number;
  /** The bucket the points were leased from (sliding-window.ts): unspent ones go back to it. */
  bucket: number;
};

/** The clock leases live on: monotonic (the wall clock may be stepped back by NTP or an operator). */
export const leaseClock = () => performance.now();

/** Above this many leases, expired ones are swept — then not again until the map has doubled (amortised O(1)). */
const SWEEP_ABOVE = 10_000;

const NOTHING = { points: 0, bucket: 0 };

export class Leases {
  private readonly byCounter = new Map<string, Lease>();
  /** Points asked ahead by calls still in flight, per counter: two calls never both ask a full slice. */
  private readonly asking = new Map<string, number>();
  private sweepAbove = SWEEP_ABOVE;

  constructor(private readonly percent: number) {}

  /**
   * Points to take ahead for this counter along with a remote take: what tops its lease up to a
   * slice, counting what calls in flight already asked. Every call that asked must report back
   * through `answered` (update calls it), so a lease never holds more than one slice.
   */
  want(counterKey: string, limit: number, now: number): number {
    const slice = Math.floor((limit * this.percent) / 100);
    if (slice < 1) return 0;
    const held = this.live(counterKey, limit, now)?.remaining ?? 0;
    const asked = this.asking.get(counterKey) ?? 0;
    const points = Math.max(0, slice - held - asked);
    if (points > 0) this.asking.set(counterKey, asked + points);
    return points;
  }

  /** A call that asked `wanted` points ahead for the counter has its answer (or failed). */
  answered(counterKey: string, wanted: number) {
    if (wanted <= 0) return;
    const left = (this.asking.get(counterKey) ?? 0) - wanted;
    if (left > 0) this.asking.set(counterKey, left);
    else this.asking.delete(counterKey);
  }

  /**
   * Empties a counter's lease for a take that goes to Redis, which gives the points back to the
   * counter before deciding: a request the lease alone could not cover may still fit in the lease
   * and what Redis has left together. The lease stays, at 0, for the grant to refill.
   */
  giveBack(counterKey: string, limit: number, now: number): { points: number; bucket: number } {
    const lease = this.live(counterKey, limit, now);
    if (!lease) return NOTHING;
    const points = lease.remaining;
    lease.remaining = 0;
    return { points, bucket: lease.bucket };
  }

  /**
   * Decides a whole request from leases: every group admitted, each counter's state as this
   * instance knows it. Undefined — and nothing spent — unless every counter the request asks has
   * a live lease covering all of the request's points on it.
   */
  spend(groups: readonly Group[], now: number): GroupOutcome[] | undefined {
    let asks = 0;
    for (let g = 0; g < groups.length; g++) asks += groups[g].asks.length;
    const leases = new Array<Lease>(asks);
    let i = 0;
    for (let g = 0; g < groups.length; g++) {
      for (const ask of groups[g].asks) {
        const lease = this.live(ask.limiter.getKey(ask.key), limitOf(ask), now);
        if (!lease) return undefined;
        leases[i++] = lease;
      }
    }
    // Spend group by group (so each group's states are as of that group), then undo it all if a
    // lease fell short: one counter may be asked by several groups.
    const outcomes = new Array<GroupOutcome>(groups.length);
    let short = false;
    i = 0;
    for (let g = 0; g < groups.length; g++) {
      const group = groups[g].asks;
      const first = i;
      for (let a = 0; a < group.length; a++) {
        const lease = leases[i++];
        lease.remaining -= points(group[a].points);
        if (lease.remaining < 0) short = true;
      }
      const states = new Array<CounterState>(group.length);
      for (let a = 0; a < group.length; a++) {
        const lease = leases[first + a];
        const used = lease.redisUsed - lease.remaining;
        states[a] = { used, bucket: lease.bucket, previous: 0, current: used, msLeft: lease.expiresAt - now };
      }
      outcomes[g] = { ok: true, states };
    }
    if (!short) return outcomes;
    i = 0;
    for (let g = 0; g < groups.length; g++) for (const ask of groups[g].asks) leases[i++].remaining += points(ask.points);
    return undefined;
  }

  /**
   * Records what Redis said about a counter after a remote take: its points used (`granted`
   * included), its bucket and the ms to that bucket's end, and the points it granted ahead. A
   * lease held from another bucket is gone: its points count in Redis, not here.
   */
  update(limiter: CounterFamily, counterKey: string, limit: number, wanted: number, redisUsed: number, msLeft: number, bucket: number, granted: number, now: number) {
    this.answered(counterKey, wanted);
    const held = this.live(counterKey, limit, now);
    const lease = held?.bucket === bucket ? held : undefined;
    if (lease) {
      lease.remaining += granted;
      lease.redisUsed = redisUsed;
      return;
    }
    if (granted <= 0) return;
    if (this.byCounter.size > this.sweepAbove) {
      for (const [key, old] of this.byCounter) if (old.expiresAt <= now) this.byCounter.delete(key);
      this.sweepAbove = Math.max(SWEEP_ABOVE, this.byCounter.size * 2);
    }
    this.byCounter.set(counterKey, { limiter, limit, remaining: granted, redisUsed, expiresAt: now + msLeft, bucket });
  }

  /**
   * Takes every unspent lease back, for a graceful stop: the counter, the points to give back to
   * it and the bucket they were leased from (the give-back script gives only to a bucket that
   * still counts).
   */
  surrender(now: number): [limiter: CounterFamily, counterKey: string, points: number, bucket: number][] {
    const back: [CounterFamily, string, number, number][] = [];
    for (const [key, lease] of this.byCounter) if (lease.remaining > 0 && lease.expiresAt > now) back.push([lease.limiter, key, lease.remaining, lease.bucket]);
    this.byCounter.clear();
    return back;
  }

  /** A counter's points used as Redis reported them, seen from here (this instance's unspent leased points left out). */
  seen(counterKey: string, redisUsed: number): number {
    const lease = this.live(counterKey, undefined, leaseClock());
    if (!lease) return redisUsed;
    lease.redisUsed = redisUsed;
    return redisUsed - lease.remaining;
  }

  /** A live lease of the counter; taken under `limit` (a read that knows no limit passes none). */
  private live(counterKey: string, limit: number | undefined, now: number): Lease | undefined {
    const lease = this.byCounter.get(counterKey);
    return lease && lease.expiresAt > now && (limit === undefined || lease.limit === limit) ? lease : undefined;
  }
}
