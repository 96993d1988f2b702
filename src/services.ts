import pino, { type Logger } from 'pino';
import { redisTarget, type Config } from './config';
import { openDatabase, type DatabaseHandle } from './db/client';
import { tollgateMigrations } from './db/migrate';
import { Metrics } from './http/metrics';
import { KeyAuthenticator } from './keys/authenticator';
import { KEY_CHANGED_CHANNEL } from './keys/key-events';
import { KeyService } from './keys/service';
import { FieldGate } from './gates/field-gate';
import { IpGate } from './gates/ip-gate';
import { ConcurrencyGate } from './gates/concurrency-gate';
import { createLimiterStore, createRedisClient, type LimiterStore, type RedisClient } from './counting/store';
import { boundedStdout } from './log-destination';
import { errorFields, serializeError } from './log-error';
import { OutageWatch, describeFailure } from './outage-watch';
import { ConsumerService } from './consumers/service';
import { UsageCounter } from './usage/counter';
import { UsageWriter } from './usage/writer';
import { UsageHistory } from './usage/history';
import { Outbox } from './alerts/outbox';
import { WebhookDelivery } from './alerts/delivery';
import { AlertWatch } from './alerts/watch';

export type ServiceOptions = {
  /** An already open database (tests share one per file); otherwise opened from config. */
  database?: DatabaseHandle;
  /** Where log lines go (tests capture them); stdout by default, bounded (log-destination.ts). */
  logStream?: NodeJS.WritableStream;
  /** The time key expiry and rotation grace are judged against (tests move it instead of sleeping). */
  now?: () => number;
  /** Who holds an embedded database folder (named to a second process that tries to open it). */
  purpose?: string;
};

export type Services = {
  config: Config;
  logger: Logger;
  metrics: Metrics;
  database: DatabaseHandle;
  databaseWatch: OutageWatch;
  store: LimiterStore;
  authenticator: KeyAuthenticator;
  keys: KeyService;
  consumers: ConsumerService;
  ipGate: IpGate;
  fieldGate: FieldGate;
  /** MAX_CONCURRENT_PER_KEY; null when off (no store call at all). */
  concurrency: ConcurrencyGate | null;
  /** Usage history: counted per operation (null when USAGE_TRACKING is off), written in batches, read back. */
  usage: { counter: UsageCounter | null; writer: UsageWriter | null; history: UsageHistory };
  /** Signed webhooks: the outbox (always, for listing), and when ALERT_WEBHOOK_URL is set the watch that records alerts and the worker that sends them. */
  alerts: { outbox: Outbox; watch: AlertWatch | null; delivery: WebhookDelivery | null };
  /** Coordinates carrying @rateLimit (the ones a key may override); filled when a schema is built. */
  limitedCoordinates: Set<string>;
  close(): Promise<void>;
};

/**
 * Builds Tollgate's object graph from config — database, limiter store, key services, gates,
 * revocation pub/sub — and nothing else: no HTTP, no schema. `close` releases it in order.
 */
export async function createServices(config: Config, options: ServiceOptions = {}): Promise<Services> {
  const limitedCoordinates = new Set<string>();
  const metrics = new Metrics(limitedCoordinates);
  const logger = pino(
    {
      level: config.logLevel,
      // ISO 8601 times (an epoch in milliseconds is no help to whoever reads an incident's log).
      timestamp: pino.stdTimeFunctions.isoTime,
      // An error is logged as its type and message (and code, and stack where one is wanted).
      serializers: { err: serializeError },
      // Belt and braces: nothing logs headers today, but a secret must never reach a log line.
      redact: { paths: ['req.headers["x-api-key"]', 'req.headers.authorization', 'headers["x-api-key"]', 'headers.authorization', 'secret'], censor: '[redacted]' },
    },
    options.logStream ?? boundedStdout(() => metrics.logLineDropped()),
  );

  // The database (PGlite takes about a second to start) and the limiter store's first connection
  // are prepared side by side: start-up waits for the slower, not for their sum.
  const opening = options.database
    ? Promise.resolve(options.database)
    : openDatabase({ url: config.databaseUrl, dataDir: config.dataDir, poolSize: config.databasePoolSize, purpose: options.purpose, timeoutMs: config.databaseTimeoutMs, onQuery: () => metrics.dbQuery() });
  const ownsDatabase = !options.database;
  const store = createLimiterStore({
    redis: redisTarget(config),
    failureMode: config.onStoreFailure,
    commandTimeoutMs: config.limiterTimeoutMs,
    leasePercent: config.leasePercent,
    instanceCount: config.instanceCount,
    logger,
    observe: (kind, call, seconds) => metrics.storeCall(kind, call, seconds),
    onFailure: (call) => metrics.storeFailure('redis', call),
    now: options.now,
  });
  metrics.countRedisCommands(() => store.commands());
  const storeReady = store.ready();
  const database = await opening.catch(async (error: unknown) => {
    await store.close();
    throw error;
  });
  try {
    await database.migrate(tollgateMigrations);
  } catch (error) {
    await store.close();
    if (ownsDatabase) await database.close();
    throw error;
  }
  if (!(await storeReady)) logger.warn({ failureMode: config.onStoreFailure }, 'limiter store (Redis) not reachable at start; applying LIMITS_ON_STORE_FAILURE until it is');

  const databaseWatch = new OutageWatch('database', logger);
  const authenticator = new KeyAuthenticator({
    db: database.db,
    prefix: config.keyPrefix,
    cacheTtlMs: config.keyCacheTtlMs,
    negativeCacheTtlMs: config.keyNegativeCacheTtlMs,
    lastUsedFlushMs: config.lastUsedFlushMs,
    databaseTimeoutMs: config.databaseTimeoutMs,
    staleIfErrorMs: config.keyStaleIfErrorMs,
    onDatabaseResult: (error) => (error ? databaseWatch.failed(error) : databaseWatch.succeeded()),
    onLookup: (hit) => metrics.keyLookup(hit),
    now: options.now,
  });

  // Revocation must reach every instance within a second: invalidate locally at once, and tell
  // the others over Redis pub/sub when there are others to tell.
  let subscriber: RedisClient | undefined;
  const target = redisTarget(config);
  if (target) {
    subscriber = createRedisClient(target, 'key-events', config.limiterTimeoutMs);
    subscriber.on('error', () => {}); // outages are reported by the limiter store's client
    subscriber.on('message', (_channel: string, keyId: string) => {
      authenticator.invalidate(keyId);
      watch?.keyChanged(); // a key made elsewhere (another instance, the CLI) is checked for expiry here too
    });
    subscriber.on('ready', () => void subscriber!.subscribe(KEY_CHANGED_CHANNEL).catch(() => undefined));
  }
  const outbox = new Outbox(database.db, options.now);
  const { alerts: alerting } = config;
  const watch = alerting.url
    ? new AlertWatch({ outbox, db: database.db, logger, thresholds: alerting.thresholds, keyExpiryDays: alerting.keyExpiryDays, rotationDays: config.keyRotationDays, now: options.now })
    : null;
  const delivery = alerting.url && alerting.secret
    ? new WebhookDelivery({ outbox, url: alerting.url, secret: alerting.secret, logger, now: options.now, onResult: (result) => metrics.webhookDelivery(result) })
    : null;

  // A change to a key, or to a consumer or plan (every key under it), reaches every instance's cache within a second.
  const announce = async (id: string) => {
    authenticator.invalidate(id);
    watch?.keyChanged();
    await store.redis?.publish(KEY_CHANGED_CHANNEL, id).catch((err: Error) => logger.error({ err: errorFields(err) }, 'could not publish key change'));
  };
  const consumers = new ConsumerService({ db: database.db, limitedCoordinates, maxQueryCost: config.maxQueryCost, onChanged: announce });
  const keys = new KeyService({
    db: database.db,
    prefix: config.keyPrefix,
    scopes: config.scopes,
    limitedCoordinates,
    onKeyChanged: announce,
  });

  const usageCounter = config.usage.enabled ? new UsageCounter(options.now) : null;
  const usageWriter = usageCounter
    ? new UsageWriter({ db: database.db, counter: usageCounter, logger, flushMs: config.usage.flushMs, retentionMs: config.usage.retentionMs, timeoutMs: config.databaseTimeoutMs * 2, now: options.now, onFlush: (_rows, failed) => metrics.usageWritten(failed) })
    : null;
  usageWriter?.start();
  watch?.start();
  delivery?.start();

  return {
    config,
    logger,
    metrics,
    usage: { counter: usageCounter, writer: usageWriter, history: new UsageHistory(database.db, options.now) },
    alerts: { outbox, watch, delivery },
    database,
    databaseWatch,
    store,
    authenticator,
    keys,
    consumers,
    ipGate: new IpGate(store, { requests: config.ipLimit, authFailures: config.authFailureLimit, ipv6PrefixLength: config.ipv6PrefixLength }),
    fieldGate: new FieldGate(store),
    concurrency: config.maxConcurrentPerKey > 0
      ? new ConcurrencyGate({
          limit: config.maxConcurrentPerKey,
          // Every request is answered by REQUEST_TIMEOUT_MS; a slot still held a second later belongs to an instance that died.
          slotTtlMs: config.requestTimeoutMs + 1000,
          redis: store.redis,
          failureMode: config.onStoreFailure,
          instanceCount: config.instanceCount,
          observe: (seconds) => metrics.storeCall('redis', 'concurrency', seconds),
          onFailure: () => metrics.storeFailure('redis', 'concurrency'),
        })
      : null,
    limitedCoordinates,
    async close() {
      await authenticator.close().catch((error: unknown) => logger.error({ err: errorFields(error, describeFailure(error)) }, 'could not record last_used_at at shutdown'));
      // The last counts are written before the database closes (a crash loses at most one flush interval).
      await usageWriter?.close();
      await watch?.close();
      await delivery?.close();
      subscriber?.disconnect();
      await store.close();
      if (ownsDatabase) await database.close();
    },
  };
}
