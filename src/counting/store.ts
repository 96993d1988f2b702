import Redis, { Cluster } from 'ioredis';
import { RateLimiterMemory, RateLimiterRedis, type RateLimiterAbstract } from 'rate-limiter-flexible';
import type { Logger } from 'pino';
import { serviceUnavailable } from '../errors';
import { Leases } from './lease';
import { OutageWatch } from '../outage-watch';
import { MemoryCounters, bucketOf, usedOf, type Calendar } from './sliding-window';
import { MemoryTaker, RedisTaker, counterFamily, giveBackInMemory, limitOf, periodOf, takeInMemory, windowMs, type CounterFamily, type CounterState, type GiveBack, type Group, type GroupOutcome, type Take } from './take';

export type StoreFailureMode = 'insurance' | 'open' | 'closed';
export type LimiterSpec = { keyPrefix: string; points: number; duration: number; blockDuration?: number; calendar?: Calendar };

/**
 * Where every gate keeps its counters: process memory by default, Redis when REDIS_URL is
 * set so that all instances share one budget. Window counters (sliding, take.ts) are Tollgate's
 * own; rate-limiter-flexible limiters are made here too, for the one counter that is a block
 * rather than a budget (failed authentications).
 */
export type LimiterStore = {
  kind: 'memory' | 'redis';
  failureMode: StoreFailureMode;
  redis?: RedisClient;
  /** One family of window counters per prefix and window length (its points are only a default limit). */
  counters(spec: LimiterSpec): CounterFamily;
  /** A rate-limiter-flexible limiter, one per prefix and window length: a fixed window, with blocks (failed authentications). */
  fixedWindowLimiter(spec: LimiterSpec): RateLimiterAbstract;
  /** Takes points from several counters at once, all or nothing (take.ts). */
  take: Take;
  /** Where a counter stands, taking nothing. */
  read(family: CounterFamily, key: string): Promise<CounterState>;
  /** Gives points back to the buckets they were taken from, never below zero (take.ts, GiveBack); null where nothing was given. */
  giveBack(items: readonly GiveBack[]): Promise<(CounterState | null)[]>;
  /** Counters of one take must share a hash slot (Redis Cluster). */
  sharded: boolean;
  /** Redis commands this instance's limiters have sent (counted at the client), for tests and the bench. */
  commands(): number;
  /** Waits (up to timeoutMs) for the first connection; false if the store is not there yet. */
  ready(timeoutMs?: number): Promise<boolean>;
  /** Reports whether the store answers right now (for /ready); bounded by the command timeout. */
  healthy(): Promise<boolean>;
  close(): Promise<void>;
};

/** One Redis or a Redis Cluster: ioredis speaks both, with the same commands. */
export type RedisClient = Redis | Cluster;
/** Where Redis is: a URL (REDIS_URL), or a cluster's seed nodes (REDIS_CLUSTER_NODES). */
export type RedisTarget = string | readonly { host: string; port: number }[];

export function createRedisClient(target: RedisTarget, purpose: string, commandTimeoutMs?: number): RedisClient {
  const options = {
    connectionName: `tollgate:${purpose}`,
    // Fail fast instead of queueing while Redis is down: a limiter must answer now.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    // A command whose reply was lost may have run: sent again after a reconnect, a take would
    // charge twice. Never resend; the caller's failure mode already answered for it.
    autoResendUnfulfilledCommands: false,
    // A Redis that is connected but silent (frozen, overloaded, a half-open connection) would
    // hang every command: past this, the command fails and the store-failure mode applies.
    commandTimeout: commandTimeoutMs,
    connectTimeout: Math.max(1000, (commandTimeoutMs ?? 1000) * 5),
    // How long a closing socket may take to close before it is destroyed. ioredis's 2 s default
    // also runs when the socket is long gone (a refused connection, or a second close), as a
    // timer that keeps the process alive 2 s after close() for nothing.
    disconnectTimeout: 200,
  };
  if (typeof target !== 'string') {
    return closingForGood(new Cluster([...target], {
      redisOptions: options,
      enableOfflineQueue: false,
      // Off: an automatic pipeline groups commands by node, and while a master fails over its
      // slots move, so one pipeline can span two nodes and fail whole. Takes are batched per slot
      // already (take.ts), one command each.
      enableAutoPipelining: false,
      clusterRetryStrategy: (attempt) => Math.min(attempt * 100, 2000),
      // While a master fails over, commands for its slots fail at once (the store-failure mode
      // answers) and the slot map is refreshed until a replica has taken over.
      retryDelayOnClusterDown: 100,
      retryDelayOnFailover: 100,
      slotsRefreshTimeout: Math.max(1000, (commandTimeoutMs ?? 1000) * 5),
      slotsRefreshInterval: 1000,
    }));
  }
  return new Redis(target, {
    ...options,
    // Commands issued in the same tick travel in one pipeline: one round trip for many windows.
    enableAutoPipelining: true,
    retryStrategy: (attempt) => Math.min(attempt * 100, 2000),
  });
}

/**
 * ioredis re-arms a cluster's slot refresh when a refresh still under way at disconnect() or quit()
 * ends: the closed client then tries again every second, for ever, and its process never ends by
 * itself (a jest worker force-exited; an owner's app after tollgate.close()). Once closed for good,
 * a refresh does nothing, so the last timer fires once and nothing sets another.
 */
function closingForGood(cluster: Cluster): Cluster {
  const noRefresh = () => {
    (cluster as unknown as { refreshSlotsCache: () => void }).refreshSlotsCache = () => {};
  };
  const { disconnect, quit } = cluster;
  cluster.disconnect = (reconnect = false) => {
    if (!reconnect) noRefresh();
    return disconnect.call(cluster, reconnect);
  };
  cluster.quit = ((...args: Parameters<Cluster['quit']>) => {
    noRefresh();
    return quit.apply(cluster, args);
  }) as Cluster['quit'];
  return cluster;
}

/** Observes every store call (metrics): which call and how long. */
export type StoreObserver = (store: 'memory' | 'redis', call: string, seconds: number) => void;

const INSTRUMENTED_CALLS = ['consume', 'get', 'reward', 'block'] as const;

/** Wraps a limiter's calls with timing; a RateLimiterRes rejection is an answer, not a failure. */
function instrument<T extends RateLimiterAbstract>(limiter: T, store: 'memory' | 'redis', observe?: StoreObserver): T {
  if (!observe) return limiter;
  for (const call of INSTRUMENTED_CALLS) {
    const original = (limiter[call] as (...args: unknown[]) => Promise<unknown>).bind(limiter);
    (limiter as Record<string, unknown>)[call] = (...args: unknown[]) => {
      const started = performance.now();
      return original(...args).then(
        (value) => (observe(store, call, (performance.now() - started) / 1000), value),
        (error: unknown) => {
          observe(store, call, (performance.now() - started) / 1000);
          throw error;
        },
      );
    };
  }
  return limiter;
}

/**
 * RateLimiterRedis that reports every Redis answer and failure: to the outage watch, and to the
 * failure count. Its insurance limiter hides failures from callers (that is its job), so they
 * are seen here, at the two methods that talk to Redis, whatever the failure mode.
 */
class WatchedRateLimiterRedis extends RateLimiterRedis {
  constructor(
    options: ConstructorParameters<typeof RateLimiterRedis>[0],
    private readonly watch: OutageWatch,
    private readonly onFailure?: (call: string) => void,
  ) {
    super(options);
  }
  private watched<T>(call: string, pending: Promise<T>): Promise<T> {
    return pending.then(
      (value) => (this.watch.succeeded(), value),
      (error: unknown) => {
        this.watch.failed(error);
        this.onFailure?.(call);
        throw error;
      },
    );
  }
  _upsert(...args: unknown[]): Promise<unknown> {
    return this.watched('upsert', (RateLimiterRedis.prototype as unknown as { _upsert(...a: unknown[]): Promise<unknown> })._upsert.apply(this, args));
  }
  _get(...args: unknown[]): Promise<unknown> {
    return this.watched('get', (RateLimiterRedis.prototype as unknown as { _get(...a: unknown[]): Promise<unknown> })._get.apply(this, args));
  }
}

export function createLimiterStore(options: {
  /** REDIS_URL or REDIS_CLUSTER_NODES; memory when absent. */
  redis?: RedisTarget;
  failureMode: StoreFailureMode;
  /** How long one Redis command may take before it counts as a store failure. */
  commandTimeoutMs?: number;
  /** LIMITS_LEASE_PERCENT (lease.ts): Redis only; memory is always exact. */
  leasePercent?: number;
  /**
   * LIMITS_INSTANCE_COUNT: how many instances share the limits. While Redis is down, insurance
   * decides in each instance's memory, so each takes its share (limit ÷ instances, at least 1)
   * rather than every instance admitting the whole limit.
   */
  instanceCount?: number;
  logger?: Logger;
  observe?: StoreObserver;
  /** Told about every failed Redis command (metrics), even when insurance answered for it. */
  onFailure?: (call: string) => void;
  /** The clock calendar quotas' periods are judged on (tests move it to a midnight); Date.now by default. */
  now?: () => number;
}): LimiterStore {
  const clock = options.now ?? Date.now;
  const limiters = new Map<string, RateLimiterAbstract>();
  // A family is its counters: prefix and window length. Its points are only the default limit
  // of asks that bring none (gates always bring theirs), so they are not part of its identity.
  const specKey = (s: LimiterSpec) => `${s.keyPrefix}|${s.duration}|${s.blockDuration ?? 0}`;
  const families = new Map<string, CounterFamily>();
  const counters = (spec: LimiterSpec) => {
    const key = specKey(spec);
    let family = families.get(key);
    if (!family) families.set(key, (family = counterFamily(spec.keyPrefix, spec.duration, spec.points, spec.calendar)));
    return family;
  };

  if (!options.redis) {
    const memory = new MemoryCounters();
    return {
      kind: 'memory',
      failureMode: options.failureMode,
      counters,
      fixedWindowLimiter(spec) {
        const key = specKey(spec);
        let limiter = limiters.get(key);
        if (!limiter) limiters.set(key, (limiter = instrument(new RateLimiterMemory(spec), 'memory', options.observe)));
        return limiter;
      },
      take: new MemoryTaker(memory, clock).take,
      read: async (family, key) => {
        const ms = windowMs(family);
        const count = memory.read(family.getKey(key), ms, Date.now(), periodOf(family, clock));
        return { ...count, used: usedOf(count.previous, count.current, count.msLeft, ms) };
      },
      giveBack: async (items) => items.map((item) => giveBackInMemory(item, memory, clock)),
      sharded: false,
      commands: () => 0,
      ready: async () => true,
      healthy: async () => true,
      close: async () => {},
    };
  }

  const redis = createRedisClient(options.redis, 'limits', options.commandTimeoutMs);
  const sharded = redis instanceof Cluster;
  const watch = new OutageWatch('limiter store (Redis)', options.logger);
  // One Redis: a connection error is an outage. A cluster keeps reconnecting to a dead node long
  // after a replica replaced it; there, the outcome of commands says whether it serves.
  redis.on('error', (err: Error) => (sharded ? undefined : watch.failed(err)));
  redis.on('ready', () => watch.succeeded());
  // What a take falls back to in `insurance` mode: counters in this process's memory.
  const insurance = new MemoryCounters();
  let commands = 0;
  const send = redis.sendCommand.bind(redis) as (...args: unknown[]) => unknown;
  (redis as { sendCommand: unknown }).sendCommand = (...args: unknown[]) => (commands++, send(...args));
  const leases = options.leasePercent ? new Leases(options.leasePercent) : undefined;
  let closed = false;
  const taker = new RedisTaker(redis, {
    sharded,
    succeeded: () => watch.succeeded(),
    failed: (error, groups) => {
      watch.failed(error);
      options.onFailure?.('take');
      return answerWithoutRedis(options.failureMode, groups, insurance, Math.max(1, options.instanceCount ?? 1), clock);
    },
    observe: (seconds) => options.observe?.('redis', 'take', seconds),
    clock,
  }, leases);
  return {
    kind: 'redis',
    failureMode: options.failureMode,
    redis,
    take: taker.take,
    read: async (family, key) => {
      try {
        return await taker.read(family, key);
      } catch (error) {
        watch.failed(error as Error);
        throw error;
      }
    },
    giveBack: (items) => taker.giveBack(items),
    sharded,
    commands: () => commands,
    counters,
    fixedWindowLimiter(spec) {
      const key = specKey(spec);
      let limiter = limiters.get(key);
      if (!limiter) {
        limiter = instrument(
          new WatchedRateLimiterRedis(
            {
              ...spec,
              storeClient: redis,
              // Without this a command sent while disconnected waits for a reconnect.
              rejectIfRedisNotReady: true,
              insuranceLimiter: options.failureMode === 'insurance' ? new RateLimiterMemory(spec) : undefined,
            },
            watch,
            options.onFailure,
          ),
          'redis',
          options.observe,
        );
        limiters.set(key, limiter);
      }
      return limiter;
    },
    ready: (timeoutMs = 5000) =>
      redis.status === 'ready'
        ? Promise.resolve(true)
        : new Promise<boolean>((resolve) => {
            const timer = setTimeout(() => (redis.off('ready', onReady), resolve(false)), timeoutMs);
            timer.unref(); // a wait for Redis never keeps a process alive on its own
            const onReady = () => (clearTimeout(timer), resolve(true));
            redis.once('ready', onReady);
          }),
    healthy: async () => {
      try {
        const ok = (await redis.ping()) === 'PONG';
        watch.succeeded();
        return ok;
      } catch (error) {
        if (error instanceof Error) watch.failed(error);
        return false;
      }
    },
    close: async () => {
      if (closed) return;
      closed = true;
      await taker.returnLeases();
      redis.disconnect();
    },
  };
}

/**
 * What a take answers while Redis cannot: `insurance` decides on counters in this process's
 * memory (this instance's share of the budget, as rate-limiter-flexible's insurance limiters do
 * for its own calls), `open` admits, `closed` refuses with a 503.
 */
function answerWithoutRedis(mode: StoreFailureMode, groups: readonly Group[], insurance: MemoryCounters, instances: number, clock: () => number): GroupOutcome[] {
  if (mode === 'closed') throw serviceUnavailable('Rate limiting is temporarily unavailable; try again shortly.');
  // This instance's share of each limit (LIMITS_INSTANCE_COUNT), at least one point.
  if (mode === 'insurance') return takeInMemory(groups, insurance, (ask) => Math.max(1, Math.floor(limitOf(ask) / instances)), clock);
  const now = Date.now();
  return groups.map((g) => ({
    ok: true,
    states: g.asks.map((a) => {
      const ms = windowMs(a.limiter);
      return { used: 0, previous: 0, current: 0, bucket: bucketOf(now, ms), msLeft: (bucketOf(now, ms) + 1) * ms - now };
    }),
  }));
}
