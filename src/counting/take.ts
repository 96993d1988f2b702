import calculateSlot from 'cluster-key-slot';
import type { Cluster, Redis } from 'ioredis';
import { RateLimiterMemory, type RateLimiterAbstract } from 'rate-limiter-flexible';
import { leaseClock, type Leases } from './lease';

/**
 * Taking points from several windows at once, all or nothing — the one operation every gate is
 * built on. rate-limiter-flexible stays the limiter: an ask names a counter by its limiter (whose
 * keyPrefix and duration name the window length; the limit comes with the ask) and the key inside
 * it, and the counters are the ones that library reads and writes (`prefix:key` → points used,
 * expiring with the window), so its `get` sees what a take did. Points go back only through
 * giveBack (below), to the window they came from. What this adds is what its
 * RateLimiterUnion lacks: nothing is taken unless every window of a group admits, so nothing has
 * to be given back (animir/node-rate-limiter-flexible #280, #286) — and on Redis, every take of
 * one event-loop turn travels in ONE script call.
 */
export type Ask = {
  limiter: RateLimiterAbstract;
  key: string;
  points: number;
  /**
   * The limit this ask is decided against; the limiter's points when absent. Gates always give it:
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

/** Where one counter stands after the group was decided: points used and ms until its window resets. */
export type CounterState = { used: number; msBeforeNext: number };

/** `refusedAt` is the index of the ask that did not fit, or -1 when a required group before it refused. */
export type GroupOutcome = { ok: true; states: CounterState[] } | { ok: false; refusedAt: number; states: CounterState[] };

export type Take = (groups: readonly Group[]) => Promise<GroupOutcome[]>;

const windowMs = (limiter: RateLimiterAbstract) => limiter.duration * 1000;

/** An ask's points as the Redis take counts them: whole, never negative. */
export const scriptPoints = (points: number) => Math.max(0, Math.round(points));

/**
 * Decides takes on counters in process memory, synchronously (MemoryTaker calls it for each turn's
 * batch). Plain loops and arrays sized up front on purpose: this runs for every request, and what it
 * allocates is what GC pays (an array grown by push reserves 17 slots).
 */
export function takeInMemory(
  groups: readonly Group[],
  memoryOf: (ask: Ask) => RateLimiterMemory = (ask) => ask.limiter as RateLimiterMemory,
  limitFor: (ask: Ask) => number = limitOf,
): GroupOutcome[] {
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
    const counters = new Array<Counter>(asks.length);
    let refusedAt = -1;
    for (let i = 0; i < asks.length; i++) {
      const ask = asks[i];
      const counter = counterOf(memoryOf(ask), ask, now);
      counters[i] = counter;
      if (refusedAt >= 0 || ask.points <= 0) continue;
      // The same counter twice in one group (two identical windows) must fit both asks together.
      let already = 0;
      for (let j = 0; j < i; j++) if (counters[j].key === counter.key && asks[j].points > 0) already += asks[j].points;
      if (counter.used + already + ask.points > limitFor(ask)) refusedAt = i;
    }
    if (refusedAt < 0) for (let i = 0; i < asks.length; i++) if (asks[i].points > 0) add(counters[i], asks[i], now);
    const states = counters.map((counter): CounterState => ({ used: counter.record ? counter.record.value : 0, msBeforeNext: counter.msBeforeNext }));
    outcomes[g] = refusedAt < 0 ? { ok: true, states } : { ok: false, refusedAt, states };
    if (refusedAt >= 0 && group.required) stopped = true;
  }
  return outcomes;
}

type MemoryRecord = { value: number; expiresAt: number | null };
type MemoryStorage = {
  _storage: Map<string, MemoryRecord>;
  incrby(key: string, points: number, durationSec: number): unknown;
};
const storageOf = (limiter: RateLimiterMemory) => (limiter as unknown as { _memoryStorage: MemoryStorage })._memoryStorage;

/** One counter of a memory limiter as the take found it: its live record (none if expired or never set). */
type Counter = { storage: MemoryStorage; key: string; record: MemoryRecord | undefined; used: number; msBeforeNext: number };

function counterOf(limiter: RateLimiterMemory, ask: Ask, now: number): Counter {
  const storage = storageOf(limiter);
  const key = ask.limiter.getKey(ask.key);
  let record = storage._storage.get(key);
  const left = record?.expiresAt ? record.expiresAt - now : -1;
  // A record past its expiry is gone (its timer just has not run yet).
  if (record && record.expiresAt && left <= 0) record = undefined;
  return { storage, key, record, used: record ? record.value : 0, msBeforeNext: record ? left : windowMs(ask.limiter) };
}

/** Adds an ask's points: to the live record, or through the library's incrby, which starts a window (and its expiry timer). */
function add(counter: Counter, ask: Ask, now: number) {
  if (counter.record) {
    counter.record.value = counter.record.value + ask.points;
    return;
  }
  counter.storage.incrby(counter.key, ask.points, ask.limiter.duration);
  counter.record = counter.storage._storage.get(counter.key);
  counter.msBeforeNext = counter.record?.expiresAt ? counter.record.expiresAt - now : windowMs(ask.limiter);
}

/**
 * Points given back to the window they were taken from — the one that ends at `expiresAt` (as
 * the taker computed it from the take's answer) — and never below zero. A window that ended, or a
 * counter that is not that window any more, gets nothing: a refund never crosses into the next
 * window. `expiresAt` is read on the caller's clock, so it may be a little off the store's.
 */
export type GiveBack = { limiter: RateLimiterAbstract; key: string; points: number; expiresAt: number };

/** How far a counter's expiry may be from the one the taker saw and still be the same window. */
export const sameWindowTolerance = (limiter: RateLimiterAbstract) => Math.min(250, windowMs(limiter) / 4);

export function giveBackInMemory(item: GiveBack, limiter: RateLimiterMemory = item.limiter as RateLimiterMemory): CounterState | null {
  const now = Date.now();
  if (item.expiresAt <= now || item.points <= 0) return null;
  const record = storageOf(limiter)._storage.get(limiter.getKey(item.key));
  if (!record?.expiresAt || record.expiresAt <= now || Math.abs(record.expiresAt - item.expiresAt) > sameWindowTolerance(limiter)) return null;
  record.value = Math.max(0, record.value - item.points);
  return { used: record.value, msBeforeNext: record.expiresAt - now };
}

/** The give-back script: KEYS[1] the counter; ARGV its points, the ms it should have left, the tolerance. */
const GIVE_BACK_SCRIPT = `
local v = redis.call('get', KEYS[1])
if not v then return {-1, -1} end
local ttl = redis.call('pttl', KEYS[1])
if ttl <= 0 or math.abs(ttl - tonumber(ARGV[2])) > tonumber(ARGV[3]) then return {-1, -1} end
local left = math.max(0, tonumber(v) - tonumber(ARGV[1]))
redis.call('set', KEYS[1], left, 'PX', ttl)
return {left, ttl}
`;

/**
 * The script behind a Redis take. KEYS are the distinct counters; ARGV holds, per counter, its
 * limit, its window (seconds), the points to lease ahead for it and the unspent leased points the
 * caller gives back first (lease.ts; both 0 without leases); then the requests as one JSON array of
 * numbers: for each, its groups, and for each group whether it is required and its asks as
 * (counter index, points). One argument rather than one per number: the client's cost per
 * argument was most of a take's CPU, and Redis decodes JSON in C (measured: 18k script calls/s
 * against 16k with an argument per number). Counters are read once, every request is decided in
 * order against what the requests before it took, and each counter is written once. It returns
 * one code per group (0 admitted, n the 1-based ask that did not fit, -1 skipped) and then, per
 * counter, its points used before the batch (after the give-back), its ms to reset and the
 * points leased ahead (taken after every request of the batch, never past the limit), from which
 * the caller replays the decisions to tell every request where it stands.
 */
const TAKE_SCRIPT = `
local n = #KEYS
local used, ttl, added, back, limit = {}, {}, {}, {}, {}
for i = 1, n do
  local v = redis.call('get', KEYS[i])
  if v then used[i] = tonumber(v); ttl[i] = redis.call('pttl', KEYS[i]) else used[i] = 0; ttl[i] = -2 end
  limit[i] = tonumber(ARGV[4 * i - 3])
  -- a give-back (a lease's unspent points) counts only while its window lives
  back[i] = 0
  if v then back[i] = math.min(used[i], tonumber(ARGV[4 * i])) end
  used[i] = used[i] - back[i]
  added[i] = 0
end
local t = cjson.decode(ARGV[4 * n + 1])
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
  local want = tonumber(ARGV[4 * i - 1])
  if want > 0 then
    grant = math.max(0, math.min(want, limit[i] - used[i] - added[i]))
    added[i] = added[i] + grant
  end
  if ttl[i] < 0 then
    if added[i] > 0 then redis.call('set', KEYS[i], used[i] + added[i], 'EX', ARGV[4 * i - 2]) end
  elseif added[i] ~= back[i] then
    redis.call('incrby', KEYS[i], added[i] - back[i])
  end
  out[#out + 1] = used[i]
  out[#out + 1] = ttl[i]
  out[#out + 1] = grant
end
return out
`;

type Pending = { groups: readonly Group[]; resolve(outcomes: GroupOutcome[]): void; reject(error: unknown): void };
type RedisClient = (Redis | Cluster) & {
  tollgateTake?: (...args: (string | number)[]) => Promise<number[]>;
  tollgateGiveBack?: (...args: (string | number)[]) => Promise<number[]>;
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
  protected async decide(batch: Pending[]) {
    for (const pending of batch) pending.resolve(takeInMemory(pending.groups));
  }
}

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
    },
    /** Points leased ahead (lease.ts); without them every take goes to Redis. */
    private readonly leases?: Leases,
  ) {
    super();
    redis.defineCommand('tollgateTake', { lua: TAKE_SCRIPT });
    redis.defineCommand('tollgateGiveBack', { numberOfKeys: 1, lua: GIVE_BACK_SCRIPT });
  }

  /**
   * Gives points back to the windows they were taken from (see GiveBack): one script call each,
   * pipelined. Null for a window that ended, or a call that failed (the points stay spent).
   */
  async giveBack(items: readonly GiveBack[]): Promise<(CounterState | null)[]> {
    const now = Date.now();
    return Promise.all(items.map(async (item) => {
      const left = item.expiresAt - now;
      if (left <= 0 || item.points <= 0) return null;
      const key = item.limiter.getKey(item.key);
      try {
        const [used, ttl] = await this.redis.tollgateGiveBack!(key, scriptPoints(item.points), Math.round(left), sameWindowTolerance(item.limiter));
        this.options.succeeded();
        if (used < 0) return null;
        return { used: this.leases ? this.leases.seen(key, used) : used, msBeforeNext: ttl };
      } catch {
        return null;
      }
    }));
  }

  /** Gives unspent leases back to Redis (a graceful stop); a failure only strands them until their windows end. */
  async returnLeases(): Promise<void> {
    if (!this.leases) return;
    const now = Date.now();
    // Through the give-back script: a lease's window that ended meanwhile gets nothing (a bare
    // DECRBY on a counter gone would leave a negative one without expiry).
    await this.giveBack(this.leases.surrender(leaseClock()).map(([limiter, key, points, msLeft]) => ({ limiter, key: limiter.parseKey(key), points, expiresAt: now + msLeft })));
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
    const counters: Ask['limiter'][] = [];
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
            const back = this.leases ? this.leases.giveBack(key, limit, sentAt) : 0;
            const want = this.leases ? this.leases.want(key, limit, sentAt) : 0;
            wanted.push(want);
            limits.push(limit);
            windows.push(limit, ask.limiter.duration, want, back);
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
      // Expiry from when the call was sent: a lease never outlives its window in Redis.
      for (let i = 0; i < keys.length; i++) {
        const { used, msBeforeNext, granted, fresh } = after[i];
        this.leases.update(counters[i], keys[i], limits[i], wanted[i], used + granted, msBeforeNext, granted, fresh, sentAt);
      }
    }
  }
}

/**
 * A counter as the script reported it, once the batch's requests are replayed: points used after
 * them (before any lease granted), ms to reset, points leased ahead, and whether the counter's
 * window began with this call.
 */
type CounterAfter = { used: number; msBeforeNext: number; granted: number; fresh: boolean };

/**
 * Turns the script's codes and counters back into each request's outcomes, in the script's order,
 * and returns each counter as it stands after them.
 */
function replay(batch: Pending[], reply: number[], counterOfAsk: number[], counters: RateLimiterAbstract[]): CounterAfter[] {
  let groupCount = 0;
  for (const pending of batch) groupCount += pending.groups.length;
  const used: number[] = [];
  const ttl: number[] = [];
  const after = new Array<CounterAfter>(counters.length);
  for (let i = 0; i < counters.length; i++) {
    used.push(Number(reply[groupCount + 3 * i]));
    const ms = Number(reply[groupCount + 3 * i + 1]);
    ttl.push(ms < 0 ? windowMs(counters[i]) : ms);
    after[i] = { used: 0, msBeforeNext: ttl[i], granted: Number(reply[groupCount + 3 * i + 2]), fresh: ms < 0 };
  }
  let code = 0;
  let ask = 0;
  for (const pending of batch) {
    const outcomes: GroupOutcome[] = [];
    for (const group of pending.groups) {
      const result = Number(reply[code++]);
      const first = ask;
      ask += group.asks.length;
      if (result === 0) for (let a = 0; a < group.asks.length; a++) used[counterOfAsk[first + a]] += scriptPoints(group.asks[a].points);
      const states = new Array<CounterState>(ask - first);
      for (let a = first; a < ask; a++) states[a - first] = { used: used[counterOfAsk[a]], msBeforeNext: ttl[counterOfAsk[a]] };
      outcomes.push(result === 0 ? { ok: true, states } : { ok: false, refusedAt: result > 0 ? result - 1 : -1, states });
    }
    pending.resolve(outcomes);
  }
  for (let i = 0; i < counters.length; i++) after[i].used = used[i];
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
