import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ApolloServerPlugin } from '@apollo/server';
import type { GraphQLSchema, ValidationRule } from 'graphql';
import { hardeningRules } from './graphql/hardening';
import { maskUnexpected } from './graphql/mask';
import { adminResolvers } from './admin/resolvers';
import { createServices, type ServiceOptions, type Services } from './services';
import { closeSync, constants as fsConstants, fchmodSync, openSync, writeSync } from 'node:fs';
import { ConfigError, loadConfig, type Config } from './config';
import type { DatabaseHandle } from './db/client';
import { withTimeout } from './timeout';
import type { TollgateContext } from './graphql/context';
import { tollgatePlugin } from './graphql/plugin';
import { buildSchema, type BuiltSchema, type SchemaSpec } from './graphql/schema';
import type { AuthenticatedKey } from './keys/types';
import { Admission, Admissions, requestMeta, type RequestInfo, type RequestMeta, type SchemaGates } from './gates/pipeline';
import { FieldUsageReader } from './gates/usage';
import { canonicalAddress } from './gates/addresses';
import type { FieldGate } from './gates/field-gate';
import { newRequestId } from './request-id';
import { operationUsage } from './usage/operation-usage';
import type { GraphQLError } from 'graphql';
import type { RateLimitHeaderMode } from './graphql/rate-limit-headers';
import { httpsRefusal } from './http/require-https';
import { rememberExchange, type Exchange } from './http/access-log';

export type { RequestInfo, RequestMeta, TollgateContext, SchemaSpec, RateLimitHeaderMode };

export type TollgateOptions<Own extends object = object> = ServiceOptions & {
  /** Defaults to the environment, read exactly as `npm start` reads it. */
  config?: Config;
  /** Merge the key-administration API (`me`, `createApiKey`, …) into the schema. Default true. */
  adminApi?: boolean;
  /**
   * On the first start against an empty key table, create one admin key and print it once
   * (default: to stdout, or into BOOTSTRAP_ADMIN_KEY_FILE with mode 0600 when that is set). false:
   * don't; call `createFirstAdminKey()` yourself when you are ready.
   */
  printAdminKey?: boolean | ((secret: string) => void);
  /** The owner's own per-request values (data loaders, a database handle), merged into the context. */
  context?: (args: { request: RequestInfo; apiKey: AuthenticatedKey }) => Own | Promise<Own>;
  /** false: every gate is a no-op (the bench's bare baseline). Never in production. */
  gates?: boolean;
  /** The form of the RateLimit headers; defaults to config.rateLimitHeaders (RATELIMIT_HEADERS, `draft-8`). */
  rateLimitHeaders?: RateLimitHeaderMode;
};

/** What `tollgate.context` accepts: Apollo's standalone and Express integrations pass `{ req, res }`. */
type ContextArgs = { req: IncomingMessage & { ip?: string; id?: unknown }; res?: ServerResponse };

export type Readiness = { ok: boolean; status: 'ready' | 'degraded' | 'unavailable'; database: 'up' | 'down'; limiterStore: 'up' | 'down' | 'memory'; onStoreFailure: string };

export type Tollgate<Own extends object = object> = {
  config: Config;
  /** Tollgate's database (also usable for the owner's own tables; see the weather example). */
  database: DatabaseHandle;
  services: Services;
  /** The owner's SDL and resolvers + Tollgate's directives, admin API and `rateLimit`, every gate applied. */
  schema(spec: SchemaSpec): GraphQLSchema;
  /** The Apollo plugins that run the operation gate, hardening, masking and status codes. */
  plugins: ApolloServerPlugin<TollgateContext & Own>[];
  /**
   * Apollo's context function (standalone, Express): authenticates the request through the IP and
   * key gates — after refusing a key sent over plain HTTP when config.requireHttps is on.
   */
  context(args: ContextArgs): Promise<TollgateContext & Own>;
  /** The same, from a request any server describes (the bundled Fastify server uses it). */
  contextFor(request: RequestInfo, meta?: RequestMeta): Promise<TollgateContext & Own>;
  /**
   * Options to spread into `new ApolloServer({ … })` (recommended, not required): hostile documents
   * refused while parsed and validated, masked internal errors, introspection as
   * ALLOW_INTROSPECTION says, and Apollo's CSRF prevention off (see below).
   */
  apolloOptions: {
    validationRules: ValidationRule[];
    parseOptions: { maxTokens?: number };
    formatError: typeof maskUnexpected;
    includeStacktraceInErrorResponses: false;
    csrfPrevention: false;
    /** ALLOW_INTROSPECTION (on unless NODE_ENV=production). */
    introspection: boolean;
  };
  /** Creates the first admin key if the key table is empty; returns its secret (null if not). */
  createFirstAdminKey(): Promise<string | null>;
  /**
   * Tells Tollgate the address it is served on, once the server listens. With the embedded
   * database, whoever then finds its folder taken (the keys CLI, a second server) is told to go
   * through this address's admin API. Nothing else uses it; nothing happens on Postgres.
   */
  serving(url: string): void;
  /** Whether this instance can serve, for a readiness probe. Never waits past the timeouts; one check at a time, its answer reused for a second. */
  ready(): Promise<Readiness>;
  close(): Promise<void>;
};

/**
 * Tollgate as a library: protection that lives in the owner's schema.
 *
 *   const tollgate = await createTollgate();
 *   const schema = tollgate.schema({ typeDefs, resolvers });
 *   const server = new ApolloServer({ schema, plugins: tollgate.plugins });
 *   await startStandaloneServer(server, { context: tollgate.context });
 */
export async function createTollgate<Own extends object = object>(options: TollgateOptions<Own> = {}): Promise<Tollgate<Own>> {
  const config = options.config ?? loadConfig();
  const services = await createServices(config, options);
  const { logger, metrics, keys, store, database } = services;

  const admissions = new Admissions({
    authenticator: services.authenticator,
    ipGate: services.ipGate,
    fieldGate: services.fieldGate,
    store,
    mode: config.costMode,
    maxCost: config.maxQueryCost,
    maxSteps: config.maxQuerySteps,
    defaultBudgets: config.budgets,
    cost: config.cost,
    headers: options.rateLimitHeaders ?? config.rateLimitHeaders,
    // The metric keeps its four reasons (dashboards and alerts read them); the log says which of unknown, revoked, expired.
    onAuthFailure: (reason) => metrics.authFailure(reason === 'unknown' || reason === 'revoked' || reason === 'expired' ? 'invalid' : reason),
    onRejected: (gate) => metrics.rejected(gate),
    onCost: (points) => metrics.cost(points),
    concurrency: services.concurrency,
    // Refused before any operation (too many in flight): the key's history counts it, by its gate.
    onKeyRefused: services.usage.counter
      ? (key, error) => services.usage.counter!.record(key, operationUsage({ cost: {}, errors: [error as GraphQLError], prepaid: undefined, charges: undefined }))
      : undefined,
    onStanding: services.alerts.watch ? (key, windows, states, refusedAt) => services.alerts.watch!.standing(key, windows, states, refusedAt) : undefined,
  });
  const usage = new FieldUsageReader(store, services.fieldGate, new Map());
  const built = new WeakMap<GraphQLSchema, BuiltSchema>();
  let latest: BuiltSchema | undefined;

  // Every gate this instance applies, chosen once: the real ones, or none at all (the bench's
  // bare baseline, `gates: false`), so nothing below asks which.
  const gates: Gates = options.gates === false
    ? openGates(config)
    : {
        admit: (request, meta) => admissions.admit(request, meta),
        fieldGate: services.fieldGate,
        armor: config.armor,
        validationRules: hardeningRules(config.armor),
        parseOptions: { maxTokens: config.armor.maxTokens },
        // The schema Apollo hands back is the one schema() returned; `latest` covers a server that derived its own from it.
        of: (s) => built.get(s) ?? latest,
      };

  const schema = (spec: SchemaSpec): GraphQLSchema => {
    const result = buildSchema(spec, {
      fieldGate: gates.fieldGate,
      admin: options.adminApi === false ? null : adminResolvers({ keys, consumers: services.consumers, usage, history: services.usage.history, hourRetentionMs: config.usage.retentionMs.hour, outbox: services.alerts.outbox, rotationDays: config.keyRotationDays, standing: (owner) => admissions.standing(owner) }),
      onRejected: (coordinate) => metrics.rejected('field', coordinate),
      defaultListSize: config.cost.defaultListSize,
    });
    for (const coordinate of result.limitedCoordinates) services.limitedCoordinates.add(coordinate);
    usage.use(result.policies);
    built.set(result.schema, result);
    latest = result;
    return result.schema;
  };

  const plugins = [
    tollgatePlugin({
      logger,
      hardening: gates.armor,
      gatesOf: gates.of,
      usage: options.gates === false ? null : services.usage.counter,
    }),
  ] as ApolloServerPlugin<TollgateContext & Own>[];

  const contextFor = async (request: RequestInfo, meta: RequestMeta = requestMeta()): Promise<TollgateContext & Own> => {
    const admission = await gates.admit(request, meta);
    const { slot } = admission;
    if (slot && request.response) {
      // Given back when the response ends — answered, timed out, or the client gone — not when the
      // first operation of a batch is done. A response already over gives it back at once.
      slot.bound = true;
      request.response.once('close', () => slot.release());
      if (request.response.destroyed || request.response.writableFinished) slot.release();
    }
    try {
      latest?.rememberKey(admission.key);
      const own = options.context ? await options.context({ request, apiKey: admission.key }) : ({} as Own);
      return { ...own, requestId: request.requestId, apiKey: admission.key, admission };
    } catch (error) {
      slot?.release(); // the owner's context failed: no operation will run to give it back
      throw error;
    }
  };

  const createFirstAdminKey = async () => (await keys.createFirstAdmin(config.scopes))?.secret ?? null;
  if (options.printAdminKey !== false && config.bootstrapAdminKey) {
    const secret = await createFirstAdminKey();
    // Printed once, deliberately not through the logger: logs never hold secrets.
    if (secret) {
      if (typeof options.printAdminKey === 'function') options.printAdminKey(secret);
      else if (config.bootstrapAdminKeyFile) writeAdminKeyFile(config.bootstrapAdminKeyFile, secret);
      else printAdminKey(secret);
    }
  }

  const checkReadiness = async (): Promise<Readiness> => {
    const [db, limiter] = await Promise.all([
      withTimeout(database.ping(), config.databaseTimeoutMs, 'database ping').then(
        () => (services.databaseWatch.succeeded(), true),
        (error: unknown) => (services.databaseWatch.failed(error), false),
      ),
      store.healthy(),
    ]);
    // A limiter store down in insurance/open mode is degraded (this instance keeps serving),
    // not unready: taking every instance out at once would turn a Redis blip into an outage.
    const ok = db && (limiter || config.onStoreFailure !== 'closed');
    return {
      ok,
      status: !ok ? 'unavailable' : limiter ? 'ready' : 'degraded',
      database: db ? 'up' : 'down',
      limiterStore: store.kind === 'redis' ? (limiter ? 'up' : 'down') : 'memory',
      onStoreFailure: config.onStoreFailure,
    };
  };
  let readiness: { result: Promise<Readiness>; until: number } | undefined;

  return {
    config,
    database,
    services,
    schema,
    plugins,
    context: async ({ req, res }) => {
      const meta = requestMeta();
      const exchange: Exchange = { req, res, startedAt: performance.now(), requestId: typeof req.id === 'string' ? req.id : newRequestId(), meta };
      // For the request log plugin (http/access-log.ts), which writes the line when `res` is done.
      rememberExchange(meta, exchange);
      try {
        meta.ip = clientIp(req, config.trustedProxies);
        // REQUIRE_HTTPS, judged from the transport before the key is read (http/require-https.ts).
        const refusal = httpsRefusal(req, config);
        if (refusal) {
          (meta.gates ??= []).push('https');
          throw refusal;
        }
        return await contextFor({ requestId: exchange.requestId, ip: meta.ip, headers: req.headers, response: res }, meta);
      } catch (error) {
        // Refused before Apollo has a context: the plugin finds the exchange by the error instead.
        if (error && typeof error === 'object') rememberExchange(error, exchange);
        throw error;
      }
    },
    contextFor,
    apolloOptions: {
      validationRules: gates.validationRules,
      parseOptions: gates.parseOptions,
      formatError: maskUnexpected,
      includeStacktraceInErrorResponses: false,
      // Apollo's CSRF prevention refuses (400) a request a browser could send cross-site without a
      // preflight — but such a request cannot carry a key (x-api-key and Authorization always
      // force a preflight), and the context function refuses every keyless request before anything
      // runs. So it only ever turned the 401 a keyless GET deserves into a 400 answered first.
      csrfPrevention: false,
      introspection: config.allowIntrospection,
    },
    createFirstAdminKey,
    // A wildcard bind (:: or 0.0.0.0) is reachable from this machine through its loopback.
    serving: (url) => database.servingAt?.(url.replace(/\/\/(\[::\]|0\.0\.0\.0)(?=[:/]|$)/, '//127.0.0.1')),
    ready() {
      // One check at a time, and a "ready" answer reused for a second after it settles: a flood
      // of probes (every load balancer, every instance, every second) costs the database one ping.
      // Trouble is never served from the cache: an answer about an outage, or a "ready" after a
      // request has seen the database fail, is checked again, so a probe learns of an outage and
      // of the recovery at once.
      const now = options.now ?? Date.now;
      if (readiness && (readiness.until === Infinity || (now() < readiness.until && !services.databaseWatch.down))) return readiness.result;
      const entry: { result: Promise<Readiness>; until: number } = { result: checkReadiness(), until: Infinity };
      entry.result.then(
        (r) => (entry.until = r.status === 'ready' ? now() + READY_CACHE_MS : 0),
        () => (entry.until = 0),
      );
      readiness = entry;
      return entry.result;
    },
    close: () => services.close(),
  };
}

/** The gates one instance applies (see createTollgate). */
type Gates = {
  /** IP, key, and the admission that charges the operation and settles it. */
  admit(request: RequestInfo, meta: RequestMeta): Promise<Admission>;
  /** Field budgets (@rateLimit); null: none. */
  fieldGate: FieldGate | null;
  /** Document limits (depth, aliases, directives, tokens); null: none. */
  armor: Config['armor'] | null;
  validationRules: ValidationRule[];
  parseOptions: { maxTokens?: number };
  /** A built schema's cost policies and prepaid root fields; undefined: nothing to charge. */
  of(schema: GraphQLSchema): SchemaGates | undefined;
};

/** No gate at all: every request is admitted as one built-in key and charged nothing. Never in production. */
function openGates(config: Config): Gates {
  const bareKey: AuthenticatedKey = { id: '00000000-0000-4000-8000-000000000000', name: 'bare', scopes: config.scopes, expiresAt: null, limits: new Map(), limitCaps: new Map(), owner: '00000000-0000-4000-8000-000000000000', consumerId: null, planId: null, budgets: null, quotas: [], budgetCaps: [], maxOperationCost: null };
  return {
    admit: async (_request, meta) => Admission.open(bareKey, meta),
    fieldGate: null,
    armor: null,
    validationRules: [],
    parseOptions: {},
    of: () => undefined,
  };
}

/** How long a "ready" answer is reused after its check settles. */
const READY_CACHE_MS = 1000;

export function printAdminKey(secret: string) {
  process.stdout.write(`\nAdmin API key (shown once, store it now): ${secret}\n\n`);
}

/**
 * BOOTSTRAP_ADMIN_KEY_FILE: the first admin key into a file only its owner can read (0600), not
 * stdout — in a container stdout is the log pipeline, and logs never hold secrets. An existing
 * file is replaced and its mode tightened; a symbolic link is refused (O_NOFOLLOW), so the key
 * cannot be sent somewhere else by whoever can write the folder.
 */
export function writeAdminKeyFile(file: string, secret: string) {
  let fd: number | undefined;
  try {
    fd = openSync(file, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_TRUNC | fsConstants.O_NOFOLLOW, 0o600);
    fchmodSync(fd, 0o600);
    writeSync(fd, `${secret}\n`);
  } catch (error) {
    throw new ConfigError(
      `BOOTSTRAP_ADMIN_KEY_FILE: could not write "${file}" (${(error as NodeJS.ErrnoException).code ?? String(error)}). The first admin key was created but not shown: create another with \`npm run keys -- create --name admin --scopes admin\` (it opens the database itself when no server runs)`,
    );
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/**
 * The client's address: the socket's peer — or, behind `trustedProxies` proxies, the address the
 * outermost of them saw: that many entries from the right of X-Forwarded-For (the left is the
 * client's to write). Express's `req.ip` (set up with the same hop count) is taken when it is an
 * address. An entry that is not an IP address (a proxy's "unknown", a client's junk) is never the
 * answer: the nearest address to its right is — one a proxy nearer to us wrote — else the socket's
 * peer; never one further left, which the client chose. IPv4-mapped IPv6 is the IPv4 address.
 */
export function clientIp(req: IncomingMessage & { ip?: string }, trustedProxies: number): string {
  const framework = typeof req.ip === 'string' ? canonicalAddress(req.ip) : null;
  if (framework) return framework;
  const peer = req.socket?.remoteAddress;
  const socketAddress = (peer && canonicalAddress(peer)) ?? peer ?? 'unknown';
  if (trustedProxies <= 0) return socketAddress;
  const header = req.headers['x-forwarded-for'];
  const forwarded = (Array.isArray(header) ? header.join(',') : header ?? '').split(',').map((a) => a.trim()).filter(Boolean);
  // The socket's peer is the innermost proxy; each trusted proxy's entry names the hop before it.
  for (let i = Math.max(forwarded.length - trustedProxies, 0); i < forwarded.length; i++) {
    const address = canonicalAddress(forwarded[i]);
    if (address) return address;
  }
  return socketAddress;
}
