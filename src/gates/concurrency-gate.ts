import { randomUUID } from 'node:crypto';
import type { StoreFailureMode } from '../counting/store';
import type { RedisClient } from '../counting/store';
import { rateLimited, serviceUnavailable } from '../errors';
import { keyTag } from './field-gate';

/**
 * MAX_CONCURRENT_PER_KEY: how many requests of one key — or of its consumer, whose keys share it —
 * may be in flight at once, on every instance together (GitHub's secondary limit). A request
 * takes a slot after its key is known and gives it back when it is answered, whatever the answer
 * (success, error, the request deadline, the client hanging up: see Slot and tollgate.ts).
 *
 * A slot is a member of a sorted set scored by its deadline: REQUEST_TIMEOUT_MS plus a second,
 * by which the request has been answered one way or another. An instance that dies with requests
 * in flight cannot give their slots back; they lapse at their deadline instead of holding the
 * key's slots for ever. On Redis one script call takes a slot (drop the lapsed, count, add) with
 * Redis's clock — one extra round trip per request, and only when the limit is on.
 */
export type Slot = {
  /** Gives the slot back; once, however often it is called. */
  release(): void;
  /** Whether the HTTP response's end gives it back (otherwise the operation's end does). */
  bound: boolean;
};

export type ConcurrencyGateOptions = {
  limit: number;
  /** How long a slot may be held before it lapses (an instance that died holding it). */
  slotTtlMs: number;
  redis?: RedisClient;
  failureMode: StoreFailureMode;
  /** LIMITS_INSTANCE_COUNT: while Redis is down, insurance gives each instance its share of the limit. */
  instanceCount: number;
  observe?: (seconds: number) => void;
  onFailure?: () => void;
};

type RedisWithSlots = RedisClient & { tollgateSlot?: (key: string, id: string, limit: number, ttl: number) => Promise<[number, number]> };

/** KEYS[1] the owner's slots; ARGV the request's id, the limit, the slot's time to live. Returns {taken 0/1, in flight}. */
const SLOT_SCRIPT = `
local t = redis.call('time')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('zremrangebyscore', KEYS[1], '-inf', now)
local n = redis.call('zcard', KEYS[1])
if n >= tonumber(ARGV[2]) then return {0, n} end
local ttl = tonumber(ARGV[3])
redis.call('zadd', KEYS[1], now + ttl, ARGV[1])
redis.call('pexpire', KEYS[1], ttl)
return {1, n + 1}
`;

/** Slots in this process's memory: the store without Redis, and insurance while Redis is down. */
class MemorySlots {
  private readonly owners = new Map<string, Map<string, number>>();
  take(owner: string, id: string, limit: number, ttlMs: number): boolean {
    const now = Date.now();
    let slots = this.owners.get(owner);
    if (!slots) this.owners.set(owner, (slots = new Map()));
    for (const [held, deadline] of slots) if (deadline <= now) slots.delete(held);
    if (slots.size >= limit) return false;
    slots.set(id, now + ttlMs);
    return true;
  }
  give(owner: string, id: string) {
    const slots = this.owners.get(owner);
    if (!slots) return;
    slots.delete(id);
    if (!slots.size) this.owners.delete(owner);
  }
  /** In flight for an owner right now (tests). */
  count(owner: string): number {
    const now = Date.now();
    let n = 0;
    for (const deadline of this.owners.get(owner)?.values() ?? []) if (deadline > now) n++;
    return n;
  }
}

export class ConcurrencyGate {
  private readonly memory = new MemorySlots();
  private readonly insurance = new MemorySlots();

  constructor(private readonly options: ConcurrencyGateOptions) {
    options.redis?.defineCommand('tollgateSlot', { numberOfKeys: 1, lua: SLOT_SCRIPT });
  }

  get limit() {
    return this.options.limit;
  }

  /** The owner's slots (one hash slot with its other counters on a cluster). */
  private static key(owner: string) {
    return `tg:concurrency:${keyTag(owner)}`;
  }

  /** Takes a slot for a request of `owner` (a key id, or its consumer's); throws the 429 (or the 503 of a closed store). */
  async acquire(owner: string): Promise<Slot> {
    const { limit, slotTtlMs, redis } = this.options;
    const id = randomUUID();
    if (!redis) {
      if (!this.memory.take(owner, id, limit, slotTtlMs)) throw this.refusal();
      return this.slot(() => this.memory.give(owner, id));
    }
    const key = ConcurrencyGate.key(owner);
    const started = performance.now();
    let taken: boolean;
    try {
      const [ok] = await (redis as RedisWithSlots).tollgateSlot!(key, id, limit, slotTtlMs);
      taken = ok === 1;
    } catch {
      this.options.onFailure?.();
      return this.withoutRedis(owner, id);
    } finally {
      this.options.observe?.((performance.now() - started) / 1000);
    }
    if (!taken) throw this.refusal();
    // Given back after the response, off the request's path; if it fails, the slot lapses at its deadline.
    return this.slot(() => void redis.zrem(key, id).catch(() => this.options.onFailure?.()));
  }

  /** Redis did not answer: the store-failure mode decides, as for every other counter (store.ts). */
  private withoutRedis(owner: string, id: string): Slot {
    const { failureMode, limit, instanceCount, slotTtlMs } = this.options;
    if (failureMode === 'closed') throw serviceUnavailable('Rate limiting is temporarily unavailable; try again shortly.');
    if (failureMode === 'open') return this.slot(() => {});
    if (!this.insurance.take(owner, id, Math.max(1, Math.floor(limit / instanceCount)), slotTtlMs)) throw this.refusal();
    return this.slot(() => this.insurance.give(owner, id));
  }

  private slot(give: () => void): Slot {
    let given = false;
    return {
      bound: false,
      release() {
        if (given) return;
        given = true;
        give();
      },
    };
  }

  private refusal() {
    const { limit } = this.options;
    // A slot frees when any request of the key finishes: there is no reset time to wait for.
    return rateLimited(`This key already has ${limit} requests in flight, the most it may have at once; retry when one has finished.`, {
      gate: 'concurrency',
      limit,
      remaining: 0,
      retryAfter: 1,
      resetAt: new Date(Date.now() + 1000).toISOString(),
    });
  }

  /** Requests of an owner in flight on this instance's memory store (tests; Redis: ZCARD the key). */
  inFlight(owner: string): number {
    return this.memory.count(owner);
  }
}
