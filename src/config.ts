import { accessSync, constants as fsConstants } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';

// The only place that reads process.env. Everything else receives a typed, frozen Config,
// so tests build Config objects directly and a bad variable fails the start with its name.

const bool = z.enum(['true', 'false', '1', '0']).transform((v) => v === 'true' || v === '1');
const int = (min: number, max = Number.MAX_SAFE_INTEGER) => z.coerce.number().int().min(min).max(max);

const envSchema = z.object({
  PORT: int(0, 65535).default(4000),
  HOST: z.string().min(1).default('127.0.0.1'),
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  DATABASE_URL: z.url({ protocol: /^postgres(ql)?$/ }).optional(),
  DATABASE_POOL_SIZE: int(1, 100).default(10),
  DATA_DIR: z.string().min(1).default('.data/pglite'),
  REDIS_URL: z.url({ protocol: /^rediss?$/ }).optional(),
  REDIS_CLUSTER_NODES: z
    .string()
    .regex(/^[^\s,:]+:\d{1,5}(,[^\s,:]+:\d{1,5})*$/, 'comma-separated host:port seed nodes, e.g. 10.0.0.1:7000,10.0.0.2:7000')
    .optional(),
  KEY_PREFIX: z.string().regex(/^[a-z][a-z0-9]{1,9}$/, '2-10 lowercase letters/digits, starting with a letter').default('tg'),
  KEY_CACHE_TTL_SECONDS: int(0, 3600).default(30),
  KEY_NEGATIVE_CACHE_TTL_SECONDS: int(0, 300).default(5),
  LAST_USED_FLUSH_SECONDS: int(1, 3600).default(5),
  SCOPES: z.string().default('admin,read,write'),
  IP_LIMIT: int(1).default(600),
  IP_LIMIT_DURATION_SECONDS: int(1).default(60),
  AUTH_FAILURE_LIMIT: int(1).default(30),
  AUTH_FAILURE_WINDOW_SECONDS: int(1).default(600),
  AUTH_FAILURE_BLOCK_SECONDS: int(1).default(900),
  // false/0: no proxy; true: one proxy of yours in front; n: that many (a CDN, then a load balancer).
  TRUST_PROXY: z
    .string()
    .regex(/^(true|false|[0-9])$/, 'false, true (one proxy of yours in front), or how many proxies are in front (0-9)')
    .default('false')
    .transform((v) => (v === 'true' ? 1 : v === 'false' ? 0 : Number(v))),
  // An IPv6 client is counted by its /n network: one user is handed a /64 or a /56.
  IPV6_PREFIX_LENGTH: int(1, 128).default(56),
  LIMITS_ON_STORE_FAILURE: z.enum(['insurance', 'open', 'closed']).default('insurance'),
  LIMITER_TIMEOUT_MS: int(10, 60_000).default(100),
  LIMITS_LEASE_PERCENT: int(0, 50).default(0),
  LIMITS_INSTANCE_COUNT: int(1, 10_000).default(1),
  DATABASE_TIMEOUT_MS: int(100, 120_000).default(2000),
  REQUEST_TIMEOUT_MS: int(100, 600_000).default(10_000),
  KEY_STALE_IF_ERROR_SECONDS: int(0, 86_400).default(600),
  COST_MODE: z.enum(['enforce', 'measure']).default('enforce'),
  MAX_QUERY_COST: int(1).default(1000),
  MAX_QUERY_STEPS: int(100, 10_000_000).default(20_000),
  DEFAULT_LIST_SIZE: int(1, 10_000).default(10),
  COST_MUTATIONS: z.enum(['per-field', 'per-operation']).default('per-field'),
  COST_ABSTRACT_TYPES: z.enum(['max', 'sum']).default('max'),
  COST_TYPE_WEIGHT: z.enum(['replace', 'add']).default('replace'),
  BUDGET_POINTS: int(1).default(10000),
  BUDGET_DURATION_SECONDS: int(1).default(3600),
  // A short window beside the hourly one: a key cannot spend its hour in a minute (0 turns it off).
  BUDGET_BURST_POINTS: int(0).default(2000),
  BUDGET_BURST_SECONDS: int(1).default(60),
  MAX_DEPTH: int(1, 1000).default(12),
  MAX_ALIASES: int(0, 10000).default(30),
  MAX_DIRECTIVES: int(0, 10000).default(50),
  MAX_TOKENS: int(1).default(2000),
  MAX_QUERY_CHARS: int(1).default(20000),
  ALLOW_INTROSPECTION: bool.optional(),
  ALLOW_BATCHING: bool.default(false),
  METRICS_TOKEN: z.string().min(16).optional(),
  METRICS_PORT: int(0, 65535).optional(),
  BOOTSTRAP_ADMIN_KEY: bool.default(true),
  BOOTSTRAP_ADMIN_KEY_FILE: z.string().min(1).optional(),
  TLS_CERT_FILE: z.string().min(1).optional(),
  TLS_KEY_FILE: z.string().min(1).optional(),
  REQUIRE_HTTPS: bool.optional(),
  CORS_ORIGINS: z.string().optional(),
  ADMIN_CONSOLE: bool.default(true),
  USAGE_TRACKING: bool.default(true),
  USAGE_FLUSH_SECONDS: int(1, 60).default(2),
  USAGE_MINUTES_RETENTION_HOURS: int(1, 24 * 90).default(48),
  USAGE_HOURS_RETENTION_DAYS: int(1, 3650).default(90),
  USAGE_DAYS_RETENTION_DAYS: int(1, 36500).default(730),
  ALERT_WEBHOOK_URL: z.url({ protocol: /^https?$/ }).optional(),
  ALERT_WEBHOOK_SECRET: z.string().regex(/^whsec_[A-Za-z0-9+/=]{16,}$/, 'a Standard Webhooks secret: whsec_ followed by base64 (at least 16 characters)').optional(),
  ALERT_THRESHOLDS: z.string().regex(/^\d{1,3}(,\d{1,3})*$/, 'comma-separated percents, e.g. 80,90,100').default('80,90,100'),
  ALERT_KEY_EXPIRY_DAYS: z.string().regex(/^(\d{1,4}(,\d{1,4})*)?$/, 'comma-separated days, e.g. 7,1').default('7,1'),
  KEY_ROTATION_DAYS: int(1, 36500).optional(),
  RATELIMIT_HEADERS: z.enum(['draft-8', 'draft-7', 'draft-6', 'github', 'off']).default('draft-8'),
  // 0: off. GitHub's secondary limit is 100 concurrent requests.
  MAX_CONCURRENT_PER_KEY: int(0, 100_000).default(0),
});

export type Config = Readonly<{
  port: number;
  host: string;
  env: 'development' | 'production' | 'test';
  logLevel: string;
  databaseUrl?: string;
  databasePoolSize: number;
  dataDir: string;
  redisUrl?: string;
  /** Seed nodes of a Redis Cluster (REDIS_CLUSTER_NODES); exclusive with redisUrl. */
  redisClusterNodes?: readonly { host: string; port: number }[];
  keyPrefix: string;
  keyCacheTtlMs: number;
  keyNegativeCacheTtlMs: number;
  lastUsedFlushMs: number;
  scopes: readonly string[];
  ipLimit: { points: number; duration: number };
  authFailureLimit: { points: number; duration: number; blockDuration: number };
  /**
   * How many proxies of the owner's sit in front (TRUST_PROXY): the client's address is the one the
   * outermost of them saw — that many entries from the right of X-Forwarded-For. Never the leftmost:
   * a proxy that appends (AWS ALB, nginx's $proxy_add_x_forwarded_for) keeps what the client sent there.
   */
  trustedProxies: number;
  /** The IP budget and the failed-authentication block count an IPv6 client by its /n network (IPV6_PREFIX_LENGTH). */
  ipv6PrefixLength: number;
  onStoreFailure: 'insurance' | 'open' | 'closed';
  /** How long one limiter store (Redis) command may take before the store counts as down. */
  limiterTimeoutMs: number;
  /** Percent of each window's limit an instance may take from Redis ahead of need (src/counting/lease.ts); 0: off. */
  leasePercent: number;
  /** How many instances share the limits: each one's insurance share while Redis is down (store.ts). */
  instanceCount: number;
  /** How long connecting to Postgres, or one query, may take before the database counts as down. */
  databaseTimeoutMs: number;
  /** The most one GraphQL request may take before it is answered 503 (whatever it waits for). */
  requestTimeoutMs: number;
  /** How long a verified key keeps working from cache while the database is unreachable. */
  keyStaleIfErrorMs: number;
  costMode: 'enforce' | 'measure';
  maxQueryCost: number;
  /** Steps one reading of a document may take (document/collect-fields.ts); past it QUERY_TOO_COMPLEX. */
  maxQuerySteps: number;
  /** How operations are priced: the default list size and where implementations differ (operation-cost.ts). */
  cost: { defaultListSize: number; rules: { mutation: 'per-field' | 'per-operation'; abstractTypes: 'max' | 'sum'; typeWeight: 'replace' | 'add' } };
  /** The default operation budget: the main window first, then the burst window (if on). */
  budgets: { points: number; duration: number }[];
  armor: { maxDepth: number; maxAliases: number; maxDirectives: number; maxTokens: number; maxChars: number };
  allowIntrospection: boolean;
  allowBatching: boolean;
  metricsToken?: string;
  metricsPort?: number;
  /**
   * Whether /metrics is served at all: in production only behind METRICS_TOKEN or on its own
   * METRICS_PORT (operational data is not for the public network); anywhere else always.
   */
  metricsEnabled: boolean;
  bootstrapAdminKey: boolean;
  /** Where the first admin key is written (mode 0600) instead of stdout; unset: stdout. */
  bootstrapAdminKeyFile?: string;
  /** PEM files the bundled server serves HTTPS with (reloaded on SIGHUP); unset: plain HTTP. */
  tls?: { certFile: string; keyFile: string };
  /**
   * A request that carries a key over plain HTTP is refused (403 HTTPS_REQUIRED) before the key is
   * looked at. HTTPS is the socket's TLS, or X-Forwarded-Proto from a trusted proxy (TRUST_PROXY).
   */
  requireHttps: boolean;
  /** Browser origins the bundled server answers CORS preflights for (exact origins); empty: no CORS. */
  corsOrigins: readonly string[];
  /** The bundled server serves the admin console's static files at /admin (ADMIN_CONSOLE). */
  adminConsole: boolean;
  /** Per-key usage history (src/usage/): counted in memory, written every flushMs, kept per granularity. */
  usage: { enabled: boolean; flushMs: number; retentionMs: { minute: number; hour: number; day: number } };
  /** Signed webhooks (src/alerts/); no url: no events, nothing queued. */
  alerts: { url?: string; secret?: string; thresholds: readonly number[]; keyExpiryDays: readonly number[] };
  /** Keys whose secret is older than this are due for rotation (an alert, ApiKey.rotationDueAt); unset: never. */
  keyRotationDays?: number;
  /** The form of the RateLimit headers (graphql/rate-limit-headers.ts). */
  rateLimitHeaders: 'draft-8' | 'draft-7' | 'draft-6' | 'github' | 'off';
  /** Requests of one key (or its consumer) in flight at once, across instances (gates/concurrency-gate.ts); 0: off. */
  maxConcurrentPerKey: number;
}>;

export class ConfigError extends Error {}

/**
 * The start failed for a reason outside the code (a database that does not answer, a port in
 * use, a data folder another process holds): one line naming the cause and the variable to
 * change, printed without a stack trace.
 */
export class StartupError extends ConfigError {}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  // Empty strings mean "unset": `FOO= npm start` should not be a validation error.
  const present = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = envSchema.safeParse(present);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`);
    throw new ConfigError(`Invalid configuration:\n${lines.join('\n')}`);
  }
  const e = parsed.data;
  if (e.REDIS_URL && e.REDIS_CLUSTER_NODES) {
    throw new ConfigError('Invalid configuration:\n  REDIS_CLUSTER_NODES: set either REDIS_URL (one Redis) or REDIS_CLUSTER_NODES (a Redis Cluster), not both');
  }
  const scopes = e.SCOPES.split(',').map((s) => s.trim()).filter(Boolean);
  if (e.ALERT_WEBHOOK_URL && !e.ALERT_WEBHOOK_SECRET) throw new ConfigError('Invalid configuration:\n  ALERT_WEBHOOK_SECRET: required with ALERT_WEBHOOK_URL (a whsec_… secret the receiver verifies signatures with)');
  if (e.ALERT_THRESHOLDS.split(',').some((t) => Number(t) < 1 || Number(t) > 100)) throw new ConfigError('Invalid configuration:\n  ALERT_THRESHOLDS: each percent must be 1..100');
  if (!scopes.includes('admin')) throw new ConfigError('Invalid configuration:\n  SCOPES: must include "admin"');
  if (!e.TLS_CERT_FILE !== !e.TLS_KEY_FILE) {
    const [missing, given] = e.TLS_CERT_FILE ? ['TLS_KEY_FILE', 'TLS_CERT_FILE'] : ['TLS_CERT_FILE', 'TLS_KEY_FILE'];
    throw new ConfigError(`Invalid configuration:\n  ${missing}: required with ${given} (HTTPS needs both the certificate and its private key, PEM files)`);
  }
  for (const name of ['TLS_CERT_FILE', 'TLS_KEY_FILE'] as const) {
    const file = e[name];
    if (file) readable(name, file);
  }
  if (e.BOOTSTRAP_ADMIN_KEY_FILE) writableFolder('BOOTSTRAP_ADMIN_KEY_FILE', e.BOOTSTRAP_ADMIN_KEY_FILE);
  const corsOrigins = (e.CORS_ORIGINS ?? '').split(',').map((o) => o.trim()).filter(Boolean);
  for (const origin of corsOrigins) {
    if (!isOrigin(origin)) throw new ConfigError(`Invalid configuration:\n  CORS_ORIGINS: "${origin}" is not an origin (scheme://host[:port], no path, e.g. https://app.example.com)`);
  }
  return Object.freeze({
    port: e.PORT,
    host: e.HOST,
    env: e.NODE_ENV,
    logLevel: e.LOG_LEVEL,
    databaseUrl: e.DATABASE_URL,
    databasePoolSize: e.DATABASE_POOL_SIZE,
    dataDir: e.DATA_DIR,
    redisUrl: e.REDIS_URL,
    redisClusterNodes: e.REDIS_CLUSTER_NODES?.split(',').map((node) => {
      const at = node.lastIndexOf(':');
      return { host: node.slice(0, at), port: Number(node.slice(at + 1)) };
    }),
    keyPrefix: e.KEY_PREFIX,
    keyCacheTtlMs: e.KEY_CACHE_TTL_SECONDS * 1000,
    keyNegativeCacheTtlMs: e.KEY_NEGATIVE_CACHE_TTL_SECONDS * 1000,
    lastUsedFlushMs: e.LAST_USED_FLUSH_SECONDS * 1000,
    scopes,
    ipLimit: { points: e.IP_LIMIT, duration: e.IP_LIMIT_DURATION_SECONDS },
    authFailureLimit: {
      points: e.AUTH_FAILURE_LIMIT,
      duration: e.AUTH_FAILURE_WINDOW_SECONDS,
      blockDuration: e.AUTH_FAILURE_BLOCK_SECONDS,
    },
    trustedProxies: e.TRUST_PROXY,
    ipv6PrefixLength: e.IPV6_PREFIX_LENGTH,
    onStoreFailure: e.LIMITS_ON_STORE_FAILURE,
    limiterTimeoutMs: e.LIMITER_TIMEOUT_MS,
    leasePercent: e.LIMITS_LEASE_PERCENT,
    instanceCount: e.LIMITS_INSTANCE_COUNT,
    databaseTimeoutMs: e.DATABASE_TIMEOUT_MS,
    requestTimeoutMs: e.REQUEST_TIMEOUT_MS,
    keyStaleIfErrorMs: e.KEY_STALE_IF_ERROR_SECONDS * 1000,
    costMode: e.COST_MODE,
    maxQueryCost: e.MAX_QUERY_COST,
    maxQuerySteps: e.MAX_QUERY_STEPS,
    cost: { defaultListSize: e.DEFAULT_LIST_SIZE, rules: { mutation: e.COST_MUTATIONS, abstractTypes: e.COST_ABSTRACT_TYPES, typeWeight: e.COST_TYPE_WEIGHT } },
    budgets: [
      { points: e.BUDGET_POINTS, duration: e.BUDGET_DURATION_SECONDS },
      // the burst window only where it is tighter than the main one, and of another length
      ...(e.BUDGET_BURST_POINTS > 0 && e.BUDGET_BURST_SECONDS !== e.BUDGET_DURATION_SECONDS && e.BUDGET_BURST_POINTS < e.BUDGET_POINTS ? [{ points: e.BUDGET_BURST_POINTS, duration: e.BUDGET_BURST_SECONDS }] : []),
    ],
    armor: {
      maxDepth: e.MAX_DEPTH,
      maxAliases: e.MAX_ALIASES,
      maxDirectives: e.MAX_DIRECTIVES,
      maxTokens: e.MAX_TOKENS,
      maxChars: e.MAX_QUERY_CHARS,
    },
    allowIntrospection: e.ALLOW_INTROSPECTION ?? e.NODE_ENV !== 'production',
    allowBatching: e.ALLOW_BATCHING,
    metricsToken: e.METRICS_TOKEN,
    metricsPort: e.METRICS_PORT,
    metricsEnabled: e.NODE_ENV !== 'production' || e.METRICS_TOKEN !== undefined || e.METRICS_PORT !== undefined,
    bootstrapAdminKey: e.BOOTSTRAP_ADMIN_KEY,
    bootstrapAdminKeyFile: e.BOOTSTRAP_ADMIN_KEY_FILE,
    tls: e.TLS_CERT_FILE && e.TLS_KEY_FILE ? { certFile: e.TLS_CERT_FILE, keyFile: e.TLS_KEY_FILE } : undefined,
    requireHttps: e.REQUIRE_HTTPS ?? e.NODE_ENV === 'production',
    corsOrigins,
    adminConsole: e.ADMIN_CONSOLE,
    usage: {
      enabled: e.USAGE_TRACKING,
      flushMs: e.USAGE_FLUSH_SECONDS * 1000,
      retentionMs: { minute: e.USAGE_MINUTES_RETENTION_HOURS * 3_600_000, hour: e.USAGE_HOURS_RETENTION_DAYS * 86_400_000, day: e.USAGE_DAYS_RETENTION_DAYS * 86_400_000 },
    },
    alerts: {
      url: e.ALERT_WEBHOOK_URL,
      secret: e.ALERT_WEBHOOK_SECRET,
      thresholds: [...new Set(e.ALERT_THRESHOLDS.split(',').map(Number))].sort((a, b) => a - b),
      keyExpiryDays: [...new Set(e.ALERT_KEY_EXPIRY_DAYS.split(',').filter(Boolean).map(Number))].sort((a, b) => b - a),
    },
    keyRotationDays: e.KEY_ROTATION_DAYS,
    rateLimitHeaders: e.RATELIMIT_HEADERS,
    maxConcurrentPerKey: e.MAX_CONCURRENT_PER_KEY,
  });
}

function readable(name: string, file: string) {
  try {
    accessSync(file, fsConstants.R_OK);
  } catch (error) {
    throw new ConfigError(`Invalid configuration:\n  ${name}: cannot read "${file}" (${(error as NodeJS.ErrnoException).code ?? 'unreadable'})`);
  }
}

/** The file may not exist yet (it is written on the first start); its folder must be writable. */
function writableFolder(name: string, file: string) {
  try {
    accessSync(path.dirname(path.resolve(file)), fsConstants.W_OK);
  } catch (error) {
    throw new ConfigError(`Invalid configuration:\n  ${name}: cannot write into the folder of "${file}" (${(error as NodeJS.ErrnoException).code ?? 'not writable'})`);
  }
}

function isOrigin(text: string): boolean {
  try {
    const url = new URL(text);
    return (url.protocol === 'https:' || url.protocol === 'http:') && url.origin === text;
  } catch {
    return false;
  }
}

/** Where the shared limiter store is: one Redis (REDIS_URL), a cluster (REDIS_CLUSTER_NODES), or none (memory). */
export function redisTarget(config: Config): string | readonly { host: string; port: number }[] | undefined {
  return config.redisClusterNodes ?? config.redisUrl;
}
