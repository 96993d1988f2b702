import Redis from 'ioredis';
import { RateLimiterMemory, RateLimiterRedis, type RateLimiterAbstract } from 'rate-limiter-flexible';
import type { Logger } from 'pino';

export type StoreFailureMode = 'insurance' | 'open' | 'closed';
export type LimiterSpec = { keyPrefix: string; points: number; duration: number; blockDuration?: number };

/**
 * Where every gate keeps its counters: process memory by default, Redis when REDIS_URL is
 * set so that all instances share one budget. Limiters are created here and nowhere else,
 * so each gets its own keyPrefix and, on Redis in `insurance` mode, its own in-memory
 * insurance limiter (rate-limiter-flexible mutates it, so it cannot be shared).
 */
export type LimiterStore = {
  kind: 'memory' | 'redis';
  failureMode: StoreFailureMode;
  redis?: Redis;
  /** One limiter per spec, cached: asking twice for the same spec returns the same limiter. */
  limiter(spec: LimiterSpec): RateLimiterAbstract;
  /** Waits (up to timeoutMs) for the first connection; false if the store is not there yet. */
  ready(timeoutMs?: number): Promise<boolean>;
  /** Reports whether the store answers right now (for /ready). */
  healthy(): Promise<boolean>;
  close(): Promise<void>;
};

export function createRedisClient(url: string, purpose: string): Redis {
  return new Redis(url, {
    connectionName: `tollgate:${purpose}`,
    // Fail fast instead of queueing while Redis is down: a limiter must answer now.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    // Commands issued in the same tick travel in one pipeline: one round trip for many windows.
    enableAutoPipelining: true,
    retryStrategy: (attempt) => Math.min(attempt * 100, 2000),
  });
}

/** Observes every store call (metrics): which call, how long, and whether the store failed. */
export type StoreObserver = (store: 'memory' | 'redis', call: string, seconds: number, failed: boolean) => void;

const INSTRUMENTED_CALLS = ['consume', 'get', 'reward', 'block'] as const;

/** Wraps a limiter's calls with timing; a RateLimiterRes rejection is an answer, not a failure. */
function instrument<T extends RateLimiterAbstract>(limiter: T, store: 'memory' | 'redis', observe?: StoreObserver): T {
  if (!observe) return limiter;
  for (const call of INSTRUMENTED_CALLS) {
    const original = (limiter[call] as (...args: unknown[]) => Promise<unknown>).bind(limiter);
    (limiter as Record<string, unknown>)[call] = (...args: unknown[]) => {
      const started = performance.now();
      return original(...args).then(
        (value) => (observe(store, call, (performance.now() - started) / 1000, false), value),
        (error: unknown) => {
          observe(store, call, (performance.now() - started) / 1000, error instanceof Error);
          throw error;
        },
      );
    };
  }
  return limiter;
}

export function createLimiterStore(options: {
  redisUrl?: string;
  failureMode: StoreFailureMode;
  logger?: Logger;
  observe?: StoreObserver;
}): LimiterStore {
  const limiters = new Map<string, RateLimiterAbstract>();
  const specKey = (s: LimiterSpec) => `${s.keyPrefix}|${s.points}|${s.duration}|${s.blockDuration ?? 0}`;

  if (!options.redisUrl) {
    return {
      kind: 'memory',
      failureMode: options.failureMode,
      limiter(spec) {
        const key = specKey(spec);
        let limiter = limiters.get(key);
        if (!limiter) limiters.set(key, (limiter = instrument(new RateLimiterMemory(spec), 'memory', options.observe)));
        return limiter;
      },
      ready: async () => true,
      healthy: async () => true,
      close: async () => {},
    };
  }

  const redis = createRedisClient(options.redisUrl, 'limits');
  watchOutages(redis, options.logger);
  return {
    kind: 'redis',
    failureMode: options.failureMode,
    redis,
    limiter(spec) {
      const key = specKey(spec);
      let limiter = limiters.get(key);
      if (!limiter) {
        limiter = instrument(
          new RateLimiterRedis({
            ...spec,
            storeClient: redis,
            // Without this a command sent while disconnected waits for a reconnect.
            rejectIfRedisNotReady: true,
            insuranceLimiter: options.failureMode === 'insurance' ? new RateLimiterMemory(spec) : undefined,
          }),
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
            const onReady = () => (clearTimeout(timer), resolve(true));
            redis.once('ready', onReady);
          }),
    healthy: async () => {
      try {
        return (await redis.ping()) === 'PONG';
      } catch {
        return false;
      }
    },
    close: async () => {
      redis.disconnect();
    },
  };
}

/** Logs an outage once when it starts and once when it ends, never per request. */
function watchOutages(redis: Redis, logger?: Logger) {
  let down = false;
  redis.on('error', (err: Error) => {
    if (down) return;
    down = true;
    logger?.error({ err: { message: err.message } }, 'limiter store (Redis) unreachable');
  });
  redis.on('ready', () => {
    if (!down) return;
    down = false;
    logger?.warn('limiter store (Redis) reachable again');
  });
}
