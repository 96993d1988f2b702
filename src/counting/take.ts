import calculateSlot from 'cluster-key-slot';
import type { Cluster, Redis } from 'ioredis';
import { leaseClock, type Leases } from './lease';
import { MemoryCounters, calendarPeriod, usedOf, type Calendar, type WindowCount } from './sliding-window';

/**
 * Taking points from several windows at once, all or nothing — the one operation every gate is
 * built on. An ask names a counter by its family (a prefix and a window length; the limit comes
 * with the ask) and the key inside it. Windows slide (sliding-window.ts): each counter keeps two
 * epoch-aligned buckets, in process memory or in one Redis hash. Points go back only through
 * giveBack (below), to the bucket they came from. Nothing is taken unless every window of a group
 * admits, so nothing has to be given back (what rate-limiter-flexible's RateLimiterUnion lacks:
 * animir/node-rate-limiter-flexible #280, #286) — and on Redis, every take of one event-loop turn
 * travels in ONE script call.
 */

/** A family of counters: one prefix, one window length. Its points are only a default limit. */
export type CounterFamily = {
  readonly keyPrefix: string;
  /** The window's length, in seconds. */
  readonly duration: number;
  readonly points: number;
  /** A calendar quota (a UTC day or month, reset at its end, not sliding); absent for a sliding window. */
  readonly calendar?: Calendar;
  /** The counter's name in the store: `prefix:key`. */
  getKey(key: string): string;
  parseKey(counterKey: string): string;
};

export function counterFamily(keyPrefix: string, duration: number, points: number, calendar?: Calendar): CounterFamily {
  return {
    keyPrefix,
    duration,
    points,
    ...(calendar ? { calendar } : {}),
    getKey: (key) => `${keyPrefix}:${key}`,
    parseKey: (counterKey) => counterKey.slice(keyPrefix.length + 1),
  };
}

export type Ask = {
  limiter: CounterFamily;
  key: string;
  points: number;
  /**
   * The limit this ask is decided against; the family's points when absent. Gates always give it:
   * a counter is named by who, what and window length, never by the limit, so a changed limit
   * counts on from what was spent.
   */
  limit?: number;
};

/** The limit an ask is decided against. */
export const limitOf = (ask: Ask) => ask.limit ?? ask.limiter.points;

/**
 * Asks decided together. A request is a list of groups, decided in order: a refused `required`
 * group refuses every group after it (the IP gate and the operation budget); other groups are
 * admitted or refused on their own (each limited root field).
 */
export type Group = { asks: readonly Ask[]; required?: boolean };

/**
 * Where one counter stands after the group was decided: its buckets (sliding-window.ts), and
 * `used`, the points it holds now (the previous bucket weighted), from which a gate reports what
 * is left.
 */
export type CounterState = WindowCount & { used: number };

/** `refusedAt` is the index of the ask that did not fit, or -1 when a required group before it refused. */
export type GroupOutcome = { ok: true; states: CounterState[] } | { ok: false; refusedAt: number; states: CounterState[] };

export type Take = (groups: readonly Group[]) => Promise<GroupOutcome[]>;

export const windowMs = (family: CounterFamily) => family.duration * 1000;

/** An ask's points as the Redis take counts them: whole, never negative. */
export const scriptPoints = (points: number) => Math.max(0, Math.round(points));

const stateOf = (count: WindowCount, ms: number): CounterState => ({ ...count, used: usedOf(count.previous, count.current, count.msLeft, ms) });

/**
 * Decides takes on counters in process memory, synchronously (MemoryTaker calls it for each turn's
 * batch). Plain loops and arrays sized up front on purpose: this runs for every request, and what it
 * allocates is what GC pays (an array grown by push reserves 17 slots).
 */
export function takeInMemory(groups: readonly Group[], counters: MemoryCounters, limitFor: (ask: Ask) => number = limitOf, clock: () => number = Date.now): GroupOutcome[] {
  const outcomes = new Array<GroupOutcome>(groups.length);
  const now = Date.now();
  let stopped = false;
  for (let g = 0; g < groups.length; g++) {
    const group = groups[g];
    if (stopped) {
      outcomes[g] = { ok: false, refusedAt: -1, states: [] };
      continue;
    }
    const { asks } = group;
    const keys = new Array<string>(asks.length);
    const states = new Array<CounterState>(asks.length);
    let refusedAt = -1;
    for (let i = 0; i < asks.length; i++) {
      const ask = asks[i];
      const ms = windowMs(ask.limiter);
      keys[i] = ask.limiter.getKey(ask.key);
      states[i] = stateOf(counters.read(keys[i], ms, now, periodOf(ask.limiter, clock)), ms);
      if (refusedAt >= 0 || ask.points <= 0) continue;
      // The same counter twice in one group (two identical windows) must fit both asks together.
      let already = 0;
      for (let j = 0; j < i; j++) if (keys[j] === keys[i] && asks[j].points > 0) already += asks[j].points;
      if (states[i].used + already + ask.points > limitFor(ask)) refusedAt = i;
    }
    if (refusedAt < 0) {
      for (let i = 0; i < asks.length; i++) if (asks[i].points > 0) counters.add(keys[i], windowMs(asks[i].limiter), states[i], asks[i].points);
      // Where each counter stands after the group (a counter asked twice shows both).
      for (let i = 0; i < asks.length; i++) if (asks[i].points > 0) states[i] = stateOf(counters.read(keys[i], windowMs(asks[i].limiter), now, periodOf(asks[i].limiter, clock)), windowMs(asks[i].limiter));
    }
    outcomes[g] = refusedAt < 0 ? { ok: true, states } : { ok: false, refusedAt, states };
    if (refusedAt >= 0 && group.required) stopped = true;
  }
  return outcomes;
}

/**
 * Points given back to the bucket they were taken from (`bucket`, from the take's answer), never
 * below zero. A bucket that is neither the current one nor the previous one counts nothing any
 * more and gets nothing: a refund never crosses into a later bucket.
 */
export type GiveBack = { limiter: CounterFamily; key: string; points: number; bucket: number };

export function giveBackInMemory(item: GiveBack, counters: MemoryCounters, clock: () => number = Date.now): CounterState | null {
  if (item.points <= 0) return null;
  const ms = windowMs(item.limiter);
  const count = counters.giveBack(item.limiter.getKey(item.key), ms, item.bucket, item.points, Date.now(), periodOf(item.limiter, clock));
  return count && stateOf(count, ms);
}

/** A calendar quota's current period on `clock` (injectable: tests move it to a midnight); undefined for a sliding window. */
export const periodOf = (family: CounterFamily, clock: () => number) => (family.calendar ? calendarPeriod(family.calendar, clock()) : undefined);

/** A family's period as the scripts take it: the bucket and ms left of a quota's period, or -1, 0 for a sliding window (Redis's clock decides). */
const scriptPeriod = (family: CounterFamily, clock: () => number): [number, number] => {
  const period = periodOf(family, clock);
  return period ? [period.bucket, period.msLeft] : [-1, 0];
};

/**
 * The Lua shared by the scripts: Redis's clock (one clock for every instance), and a counter's
 * two buckets as of now — a hash {b: bucket, c: its points, p: the bucket before's}. A counter
 * whose bucket is the one before now's has rolled: its points are the previous bucket's.
 */
const READ_COUNTER = `
local function clock()
  local t = redis.call('time')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- fixed >= 0: a calendar quota's period (the caller's), with fixedLeft ms to its end; no previous bucket
local function counter(key, now, wms, fixed, fixedLeft)
  local b = math.floor(now / wms)
  local left = (b + 1) * wms - now
  if fixed >= 0 then b = fixed; left = fixedLeft end
  local h = redis.call('hmget', key, 'b', 'c', 'p')
  local hb = tonumber(h[1])
  if hb == b then
    if fixed >= 0 then return b, 0, tonumber(h[2]), left end
    return b, tonumber(h[3]), tonumber(h[2]), left
  end
  if hb == b - 1 and fixed < 0 then return b, tonumber(h[2]), 0, left end
  return b, 0, 0, left
end
-- a counter lives until its bucket (or period) and the next have passed
local function keep(key, b, wms, fixed, left)
  if fixed >= 0 then redis.call('pexpire', key, left + 60000) else redis.call('pexpireat', key, (b + 2) * wms) end
end
local function weighted(prev, cur, left, wms)
  if prev > 0 then return cur + math.floor((prev * left + wms - 1) / wms) end
  return cur
end
`;

/** The read script: KEYS[1] the counter, ARGV its window in ms and its period (scriptPeriod). Returns previous, current, ms left, bucket. */
const READ_SCRIPT = `${READ_COUNTER}
local b, prev, cur, left = counter(KEYS[1], clock(), tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]))
return {prev, cur, left, b}
`;

/**
 * The give-back script: KEYS[1] the counter; ARGV its points, the bucket they came from, the
 * window in ms and its period. To the current bucket or the previous one, never below zero; {-1}
 * for any other.
 */
const GIVE_BACK_SCRIPT = `${READ_COUNTER}
local pts, from, wms, fixed = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local b, prev, cur, left = counter(KEYS[1], clock(), wms, fixed, tonumber(ARGV[5]))
if from == b then cur = math.max(0, cur - pts)
elseif from == b - 1 and prev > 0 then prev = math.max(0, prev - pts)
else return {-1} end
redis.call('hset', KEYS[1], 'b', b, 'c', cur, 'p', prev)
keep(KEYS[1], b, wms, fixed, left)
return {prev, cur, left, b}
`;

/**
 * The script behind a Redis take. KEYS are the distinct counters; ARGV holds, per counter, its
 * limit, its window (ms), the points to lease ahead for it, the unspent leased points the caller
 * gives back first with the bucket they were leased from (lease.ts; 0 without leases), and its
 * period (scriptPeriod: a calendar quota's, or -1 for a sliding window); then
 * the requests as one JSON array of numbers: for each, its groups, and for each group whether it is
 * required and its asks as (counter index, points). One argument rather than one per number: the
 * client's cost per argument was most of a take's CPU, and Redis decodes JSON in C (measured: 18k
 * script calls/s against 16k with an argument per number). Counters are read once, every request
 * is decided in order against what the requests before it took, and each counter is written once.
 * It returns one code per group (0 admitted, n the 1-based ask that did not fit, -1 skipped) and
 * then, per counter, its previous and current buckets' points before the batch (after the
 * give-back), its ms to the bucket's end, the bucket, and the points leased ahead (taken after
 * every request of the batch, never past the limit), from which the caller replays the decisions
 * to tell every request where it stands.
 */
const TAKE_SCRIPT = `${READ_COUNTER}
local n = #KEYS
local now = clock()
local used, prev, cur, bucket, left, added, limit, wms, dirty, fixed = {}, {}, {}, {}, {}, {}, {}, {}, {}, {}
for i = 1, n do
  local a = 7 * (i - 1)
  limit[i] = tonumber(ARGV[a + 1])
  wms[i] = tonumber(ARGV[a + 2])
  fixed[i] = tonumber(ARGV[a + 6])
  bucket[i], prev[i], cur[i], left[i] = counter(KEYS[i], now, wms[i], fixed[i], tonumber(ARGV[a + 7]))
  -- a lease's unspent points go back to the bucket they were leased from, if it still counts
  local back, from = tonumber(ARGV[a + 4]), tonumber(ARGV[a + 5])
  dirty[i] = false
  if back > 0 and from == bucket[i] then cur[i] = math.max(0, cur[i] - back); dirty[i] = true
  elseif back > 0 and from == bucket[i] - 1 and prev[i] > 0 then prev[i] = math.max(0, prev[i] - back); dirty[i] = true end
  used[i] = weighted(prev[i], cur[i], left[i], wms[i])
  added[i] = 0
end
local t = cjson.decode(ARGV[7 * n + 1])
local out = {}
local p = 2
for r = 1, t[1] do
  local groups = t[p]; p = p + 1
  local stopped = false
  for g = 1, groups do
    local required = t[p] == 1
    local asks = t[p + 1]; p = p + 2
    local code = 0
    if stopped then
      code = -1
    else
      local extra = {}
      for a = 0, asks - 1 do
        local k = t[p + 2 * a]; local pts = t[p + 2 * a + 1]
        if pts > 0 then
          extra[k] = (extra[k] or 0) + pts
          if used[k] + added[k] + extra[k] > limit[k] then code = a + 1; break end
        end
      end
      if code == 0 then
        for a = 0, asks - 1 do
          local k = t[p + 2 * a]; local pts = t[p + 2 * a + 1]
          if pts > 0 then added[k] = added[k] + pts end
        end
      elseif required then
        stopped = true
      end
    end
    out[#out + 1] = code
    p = p + 2 * asks
  end
end
for i = 1, n do
  local grant = 0
  local want = tonumber(ARGV[7 * i - 4])
  if want > 0 then
    grant = math.max(0, math.min(want, limit[i] - used[i] - added[i]))
    added[i] = added[i] + grant
  end
  if added[i] > 0 or dirty[i] then
    redis.call('hset', KEYS[i], 'b', bucket[i], 'c', cur[i] + added[i], 'p', prev[i])
    keep(KEYS[i], bucket[i], wms[i], fixed[i], left[i])
  end
  out[#out + 1] = prev[i]
  out[#out + 1] = cur[i]
  out[#out + 1] = left[i]
  out[#out + 1] = bucket[i]
  out[#out + 1] = grant
end
return out
`;

type Pending = { groups: readonly Group[]; resolve(outcomes: GroupOutcome[]): void; reject(error: unknown): void };
type RedisClient = (Redis | Cluster) & {
  tollgateTake?: (...args: (string | number)[]) => Promise<number[]>;
  tollgateGiveBack?: (...args: (string | number)[]) => Promise<number[]>;
  tollgateRead?: (...args: (string | number)[]) => Promise<number[]>;
};

/**
 * Takes are decided once per event-loop turn, together: setImmediate runs after this turn's I/O
 * callbacks and their promise jobs, so every take made in the turn — this request's and other
 * requests' — is in the batch. On Redis that is one round trip for all of them. In memory there is
 * no round trip, but deciding a turn's requests together still pays: measured on the library
 * bench, answering at once cost about a quarter of the throughput (each answer then wakes the
 * client and the event loop polls once per request instead of once per turn).
 */
abstract class TurnBatcher {
  private queue: Pending[] = [];
  private scheduled = false;

  readonly take: Take = (groups) =>
    new Promise((resolve, reject) => {
      this.queue.push({ groups, resolve, reject });
      if (this.scheduled) return;
      this.scheduled = true;
      setImmediate(() => this.flush());
    });

  private flush() {
    this.scheduled = false;
    const batch = this.queue;
    this.queue = [];
    // A bug must fail the takes that wait on it, never become an unhandled rejection.
    this.decide(batch).catch((error: unknown) => batch.forEach((p) => p.reject(error)));
  }

  protected abstract decide(batch: Pending[]): Promise<void>;
}

/** Memory takes, decided in turn batches (see TurnBatcher). */
export class MemoryTaker extends TurnBatcher {
  constructor(
    private readonly counters: MemoryCounters,
    private readonly clock: () => number = Date.now,
  ) {
    super();
  }
  protected async decide(batch: Pending[]) {
    for (const pending of batch) pending.resolve(takeInMemory(pending.groups, this.counters, limitOf, this.clock));
  }
}

/** A script's reply for one counter (READ_SCRIPT, GIVE_BACK_SCRIPT) as a counter's state. */
const stateFromReply = (reply: number[], ms: number): CounterState => stateOf({ previous: Number(reply[0]), current: Number(reply[1]), msLeft: Number(reply[2]), bucket: Number(reply[3]) }, ms);

/**
 * Redis takes: a turn's batch in one script call (per hash slot on a cluster; a request's
 * counters must share a slot there, which hash tags on the key id ensure). `failed` decides what
 * a take that could not reach Redis answers (the store-failure mode).
 */
export class RedisTaker extends TurnBatcher {
  constructor(
    private readonly redis: RedisClient,
    private readonly options: {
      sharded: boolean;
      succeeded(): void;
      /** What a take answers when Redis could not (the store-failure mode); throws to refuse. */
      failed(error: unknown, groups: readonly Group[]): GroupOutcome[];
      observe?(seconds: number): void;
      /** The clock calendar quotas' periods are judged on (Redis's decides sliding windows). */
      clock?: () => number;
    },
    /** Points leased ahead (lease.ts); without them every take goes to Redis. */
    private readonly leases?: Leases,
  ) {
    super();
    redis.defineCommand('tollgateTake', { lua: TAKE_SCRIPT });
    redis.defineCommand('tollgateGiveBack', { numberOfKeys: 1, lua: GIVE_BACK_SCRIPT });
    redis.defineCommand('tollgateRead', { numberOfKeys: 1, lua: READ_SCRIPT });
  }

  /** Where a counter stands, without taking (this instance's unspent leased points are not used, so not counted). */
  async read(family: CounterFamily, key: string): Promise<CounterState> {
    const counterKey = family.getKey(key);
    const state = stateFromReply(await this.redis.tollgateRead!(counterKey, windowMs(family), ...scriptPeriod(family, this.clock)), windowMs(family));
    this.options.succeeded();
    return this.seen(counterKey, state);
  }

  /**
   * Gives points back to the buckets they were taken from (see GiveBack): one script call each,
   * pipelined. Null for a bucket that counts nothing any more, or a call that failed (the points
   * stay spent).
   */
  async giveBack(items: readonly GiveBack[]): Promise<(CounterState | null)[]> {
    return Promise.all(items.map(async (item) => {
      if (item.points <= 0) return null;
      const key = item.limiter.getKey(item.key);
      try {
        const reply = await this.redis.tollgateGiveBack!(key, scriptPoints(item.points), item.bucket, windowMs(item.limiter), ...scriptPeriod(item.limiter, this.clock));
        this.options.succeeded();
        if (Number(reply[0]) < 0) return null;
        return this.seen(key, stateFromReply(reply, windowMs(item.limiter)));
      } catch {
        return null;
      }
    }));
  }

  private get clock() {
    return this.options.clock ?? Date.now;
  }

  private seen(counterKey: string, state: CounterState): CounterState {
    if (this.leases) state.used = this.leases.seen(counterKey, state.used);
    return state;
  }

  /** Gives unspent leases back to Redis (a graceful stop); a failure only strands them until their buckets end. */
  async returnLeases(): Promise<void> {
    if (!this.leases) return;
    await this.giveBack(this.leases.surrender(leaseClock()).map(([limiter, key, points, bucket]) => ({ limiter, key: limiter.parseKey(key), points, bucket })));
  }

  protected async decide(batch: Pending[]) {
    let remote = batch;
    if (this.leases) {
      remote = [];
      const now = leaseClock();
      for (const pending of batch) {
        const outcomes = this.leases.spend(pending.groups, now);
        if (outcomes) pending.resolve(outcomes);
        else remote.push(pending);
      }
      if (!remote.length) return;
    }
    await Promise.all((this.options.sharded ? bySlot(remote) : [remote]).map((part) => this.send(part)));
  }

  private async send(batch: Pending[]) {
    const index = new Map<string, number>();
    const counters: CounterFamily[] = [];
    const keys: string[] = [];
    const windows: number[] = [];
    /** Each ask's counter (0-based), in the order the script reads them: replay walks it again. */
    const counterOfAsk: number[] = [];
    const requests: number[] = [batch.length];
    /** Points each counter asked to lease ahead (0 without leases), and the limit it was decided against. */
    const wanted: number[] = [];
    const limits: number[] = [];
    // On the leases' monotonic clock: only leases read it.
    const sentAt = leaseClock();
    for (const { groups } of batch) {
      requests.push(groups.length);
      for (const group of groups) {
        requests.push(group.required ? 1 : 0, group.asks.length);
        for (const ask of group.asks) {
          const key = ask.limiter.getKey(ask.key);
          let i = index.get(key);
          if (i === undefined) {
            index.set(key, (i = keys.length));
            keys.push(key);
            counters.push(ask.limiter);
            // With leases, the counter's unspent leased points go back first (so this request can
            // use them: one instance stays exact), and a fresh slice comes back with the answer.
            const limit = limitOf(ask);
            const back = this.leases ? this.leases.giveBack(key, limit, sentAt) : NOTHING_BACK;
            const want = this.leases ? this.leases.want(key, limit, sentAt) : 0;
            wanted.push(want);
            limits.push(limit);
            windows.push(limit, windowMs(ask.limiter), want, back.points, back.bucket, ...scriptPeriod(ask.limiter, this.clock));
          }
          counterOfAsk.push(i);
          requests.push(i + 1, scriptPoints(ask.points));
        }
      }
    }
    const started = performance.now();
    let reply: number[];
    try {
      reply = await this.redis.tollgateTake!(keys.length, ...keys, ...windows, JSON.stringify(requests));
    } catch (error) {
      if (this.leases) for (let i = 0; i < keys.length; i++) this.leases.answered(keys[i], wanted[i]);
      this.options.observe?.((performance.now() - started) / 1000);
      for (const pending of batch) {
        try {
          pending.resolve(this.options.failed(error, pending.groups));
        } catch (refusal) {
          pending.reject(refusal);
        }
      }
      return;
    }
    this.options.observe?.((performance.now() - started) / 1000);
    this.options.succeeded();
    const after = replay(batch, reply, counterOfAsk, counters);
    if (this.leases) {
      // Expiry from when the call was sent: a lease never outlives its bucket in Redis.
      for (let i = 0; i < keys.length; i++) {
        const { state, granted } = after[i];
        this.leases.update(counters[i], keys[i], limits[i], wanted[i], state.used + granted, state.msLeft, state.bucket, granted, sentAt);
      }
    }
  }
}

const NOTHING_BACK = { points: 0, bucket: 0 };

/** A counter as the script reported it, once the batch's requests are replayed, and the points leased ahead. */
type CounterAfter = { state: CounterState; granted: number };

/** Values per counter at the end of the take script's reply. */
const PER_COUNTER = 5;

/**
 * Turns the script's codes and counters back into each request's outcomes, in the script's order,
 * and returns each counter as it stands after them.
 */
function replay(batch: Pending[], reply: number[], counterOfAsk: number[], counters: CounterFamily[]): CounterAfter[] {
  let groupCount = 0;
  for (const pending of batch) groupCount += pending.groups.length;
  // Each counter as the batch goes: requests admitted add to its current bucket.
  const counts = new Array<CounterState>(counters.length);
  const after = new Array<CounterAfter>(counters.length);
  for (let i = 0; i < counters.length; i++) {
    const at = groupCount + PER_COUNTER * i;
    counts[i] = stateFromReply([reply[at], reply[at + 1], reply[at + 2], reply[at + 3]], windowMs(counters[i]));
    after[i] = { state: counts[i], granted: Number(reply[at + 4]) };
  }
  let code = 0;
  let ask = 0;
  for (const pending of batch) {
    const outcomes: GroupOutcome[] = [];
    for (const group of pending.groups) {
      const result = Number(reply[code++]);
      const first = ask;
      ask += group.asks.length;
      if (result === 0) {
        for (let a = 0; a < group.asks.length; a++) {
          const count = counts[counterOfAsk[first + a]];
          const points = scriptPoints(group.asks[a].points);
          counts[counterOfAsk[first + a]] = { ...count, current: count.current + points, used: count.used + points };
        }
      }
      const states = new Array<CounterState>(ask - first);
      for (let a = first; a < ask; a++) states[a - first] = counts[counterOfAsk[a]];
      outcomes.push(result === 0 ? { ok: true, states } : { ok: false, refusedAt: result > 0 ? result - 1 : -1, states });
    }
    pending.resolve(outcomes);
  }
  for (let i = 0; i < counters.length; i++) after[i].state = counts[i];
  return after;
}

/** On a cluster one script may touch one hash slot: requests are sent per slot of their counters. */
function bySlot(batch: Pending[]): Pending[][] {
  const parts = new Map<number, Pending[]>();
  for (const pending of batch) {
    const keys = pending.groups.flatMap((g) => g.asks.map((a) => a.limiter.getKey(a.key)));
    const slot = keys.length ? calculateSlot(keys[0]) : 0;
    if (keys.some((k) => calculateSlot(k) !== slot)) {
      pending.reject(new Error(`A take's counters span several hash slots: ${keys.join(', ')}`));
      continue;
    }
    const part = parts.get(slot);
    if (part) part.push(pending);
    else parts.set(slot, [pending]);
  }
  return [...parts.values()];
}
