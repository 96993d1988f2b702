import { randomUUID } from 'node:crypto';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { ApolloServer, type ApolloServerPlugin } from '@apollo/server';
import { fastifyApolloDrainPlugin, fastifyApolloHandler } from '@as-integrations/fastify';
import { ApolloServerPluginLandingPageDisabled } from '@apollo/server/plugin/disabled';
import type Redis from 'ioredis';
import pino, { type Logger } from 'pino';
import { GraphQLError, type GraphQLFormattedError } from 'graphql';
import type { Config } from './config';
import type { Context, RequestMeta } from './context';
import { openDatabase, type DatabaseHandle } from './db/client';
import { withTimeout } from './timeout';
import { OutageWatch, describeFailure } from './outage-watch';
import { ApiError, ErrorCode, badRequest, errorBody, isDependencyFailure, limitExtensions, serviceUnavailable, unauthenticated } from './errors';
import { KeyAuthenticator } from './keys/authenticator';
import { KeyService } from './keys/service';
import { KEY_CHANGED_CHANNEL } from './keys/key-events';
import { FieldGate } from './limits/field-gate';
import { IpGate, type IpVerdict } from './limits/ip-gate';
import { createLimiterStore, createRedisClient, type LimiterStore } from './limits/store';
import { FieldUsageReader } from './limits/usage';
import { buildSchema } from './schema';
import { responseStatusPlugin } from './graphql/response-status';
import { operationGatePlugin } from './limits/operation-gate';
import { ApolloArmor } from '@escape.tech/graphql-armor';
import { Metrics } from './http/metrics';
import { registerMetricsRoute } from './http/metrics-route';
import { createWeatherLoaders } from './weather/resolvers';
import { seedWeather } from './weather/seed';

export type ServerOptions = {
  config: Config;
  /** An already open database (tests share one per file); otherwise opened from config. */
  database?: DatabaseHandle;
  /** Where log lines go (tests capture them); stdout by default. */
  logStream?: NodeJS.WritableStream;
  /** The bench's baseline: same schema and resolvers, every gate off. Never set in production. */
  bare?: boolean;
  /** The time key expiry and rotation grace are judged against (tests move it instead of sleeping). */
  now?: () => number;
  /** Who holds an embedded database folder (named to a second process that tries to open it). */
  purpose?: string;
};

export type Tollgate = {
  app: FastifyInstance;
  apollo: ApolloServer<Context>;
  database: DatabaseHandle;
  store: LimiterStore;
  authenticator: KeyAuthenticator;
  keys: KeyService;
  fieldGate: FieldGate;
  metrics: Metrics;
  logger: Logger;
  /** Listens on config.host:config.port (0 = any free port); returns the base URL. */
  listen(): Promise<string>;
  close(): Promise<void>;
};


declare module 'fastify' {
  interface FastifyRequest {
    meta: RequestMeta;
  }
}

export async function createServer(options: ServerOptions): Promise<Tollgate> {
  const { config } = options;
  const logger = pino(
    {
      level: config.logLevel,
      // Belt and braces: nothing logs headers today, but a secret must never reach a log line.
      redact: { paths: ['req.headers["x-api-key"]', 'req.headers.authorization', 'headers["x-api-key"]', 'headers.authorization', 'secret'], censor: '[redacted]' },
    },
    options.logStream ?? process.stdout,
  );

  // Coordinates are only known once the schema is read; the metrics keep a reference to fill in.
  const coordinates = new Set<string>();
  const metrics = new Metrics(coordinates);
  // The database (PGlite takes about a second to start), the limiter store's first connection and
  // the schema are prepared side by side: start-up waits for the slowest, not for their sum.
  const opening = options.database
    ? Promise.resolve(options.database)
    : openDatabase({ url: config.databaseUrl, dataDir: config.dataDir, poolSize: config.databasePoolSize, purpose: options.purpose, timeoutMs: config.databaseTimeoutMs, onQuery: () => metrics.dbQuery() });
  const ownsDatabase = !options.database;
  const databaseWatch = new OutageWatch('database', logger);

  const store = createLimiterStore({ redisUrl: config.redisUrl, failureMode: config.onStoreFailure, commandTimeoutMs: config.limiterTimeoutMs, logger, observe: (s, call, seconds) => metrics.storeCall(s, call, seconds), onFailure: (call) => metrics.storeFailure('redis', call) });
  const storeReady = store.ready();
  const fieldGate = new FieldGate(store);
  const built = buildSchema(options.bare ? null : fieldGate, (coordinate, context) => {
    metrics.rejected('field', coordinate);
    const meta = (context as Partial<Context>).meta;
    if (meta) (meta.gates ??= []).push(`field:${coordinate}`);
  });
  const database = await opening.catch(async (error: unknown) => {
    await store.close();
    throw error;
  });
  try {
    await database.migrate();
    await seedWeather(database.db);
  } catch (error) {
    await store.close();
    if (ownsDatabase) await database.close();
    throw error;
  }
  if (!(await storeReady)) logger.warn({ failureMode: config.onStoreFailure }, 'limiter store (Redis) not reachable at start; applying LIMITS_ON_STORE_FAILURE until it is');
  for (const coordinate of built.policies.keys()) coordinates.add(coordinate);
  const ipGate = new IpGate(store, { requests: config.ipLimit, authFailures: config.authFailureLimit });

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
  let subscriber: Redis | undefined;
  if (config.redisUrl) {
    subscriber = createRedisClient(config.redisUrl, 'key-events', config.limiterTimeoutMs);
    subscriber.on('error', () => {}); // outages are reported by the limiter store's client
    subscriber.on('message', (_channel: string, keyId: string) => authenticator.invalidate(keyId));
    subscriber.on('ready', () => void subscriber!.subscribe(KEY_CHANGED_CHANNEL).catch(() => undefined));
  }
  const keys = new KeyService({
    db: database.db,
    prefix: config.keyPrefix,
    scopes: config.scopes,
    limitedCoordinates: built.limitedCoordinates,
    onKeyChanged: async (keyId) => {
      authenticator.invalidate(keyId);
      await store.redis?.publish(KEY_CHANGED_CHANNEL, keyId).catch((err: Error) => logger.error({ err: { message: err.message } }, 'could not publish key change'));
    },
  });
  const usage = new FieldUsageReader(fieldGate, built.policies);

  const app = Fastify({
    logger: false,
    trustProxy: config.trustProxy,
    bodyLimit: 1024 * 1024,
    genReqId: () => randomUUID(),
    return503OnClosing: true,
    // Errors Node's HTTP parser raises before Fastify sees a request (headers over 16 KB, a
    // broken request line) still answer in the GraphQL error shape.
    clientErrorHandler: (error: Error & { code?: string; rawPacket?: unknown }, socket) => {
      if (socket.destroyed || error.code === 'ECONNRESET') return;
      const [status, reason] = error.code === 'HPE_HEADER_OVERFLOW' ? [431, 'Request Header Fields Too Large'] : [400, 'Bad Request'];
      const body = JSON.stringify(errorBody(ErrorCode.BAD_REQUEST, status === 431 ? 'The request line and headers are larger than 16 KB.' : 'The request is not valid HTTP.'));
      // A HEAD request's answer has no body (its length is still announced).
      const isHead = Buffer.isBuffer(error.rawPacket) && error.rawPacket.subarray(0, 5).toString('latin1') === 'HEAD ';
      socket.end(`HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${isHead ? '' : body}`);
    },
  });
  app.decorateRequest('meta', null as unknown as RequestMeta);

  // Query hardening, checked during parsing/validation: before cost analysis, before any resolver.
  const armor = new ApolloArmor({
    maxDepth: { n: config.armor.maxDepth, ignoreIntrospection: true },
    maxAliases: { n: config.armor.maxAliases },
    maxDirectives: { n: config.armor.maxDirectives },
    // Tokens are counted by graphql-js's own parser (parseOptions below): armor's token plugin
    // parses the document a second time and turns a plain syntax error into a 500.
    maxTokens: { enabled: false },
    costLimit: { enabled: false }, // the operation gate does cost, from the schema's own @cost
    blockFieldSuggestion: { enabled: true },
  }).protect();

  const apollo = new ApolloServer<Context>({
    schema: built.schema,
    // main.ts owns the shutdown: Apollo's own signal handlers race it and can hang the stop.
    stopOnTerminationSignals: false,
    introspection: config.allowIntrospection,
    allowBatchedHttpRequests: config.allowBatching,
    includeStacktraceInErrorResponses: false,
    parseOptions: options.bare ? {} : { maxTokens: config.armor.maxTokens },
    // A browser cannot send x-api-key or Authorization cross-origin without a CORS preflight,
    // so a request carrying either is no CSRF risk (GET queries with a key work).
    csrfPrevention: { requestHeaders: ['x-api-key', 'authorization', 'x-apollo-operation-name', 'apollo-require-preflight'] },
    validationRules: options.bare ? [] : armor.validationRules,
    formatError: maskUnexpected,
    plugins: [
      fastifyApolloDrainPlugin(app),
      ...(options.bare ? [] : (armor.plugins as ApolloServerPlugin<Context>[])),
      accessLogPlugin(logger),
      responseStatusPlugin(),
      ...(options.bare
        ? []
        : [
            operationGatePlugin({
              store,
              policies: built.policies,
              mode: config.costMode,
              maxCost: config.maxQueryCost,
              defaultBudget: config.budget,
              precharge: built.precharge,
              onCost: (points) => metrics.cost(points),
              onRejected: () => metrics.rejected('operation'),
            }),
          ]),
      ...(config.env === 'production' ? [ApolloServerPluginLandingPageDisabled()] : []),
    ],
  });
  await apollo.start();

  const problem = (reply: FastifyReply, status: number, code: ErrorCode, message: string, extensions: Record<string, unknown> = {}) =>
    reply.code(status).type('application/json').send(errorBody(code, message, extensions));

  // Transport errors (bad JSON, wrong content type, body too large) answer in GraphQL's shape.
  app.setErrorHandler((error: { statusCode?: number; code?: string; message: string }, request, reply) => {
    const status = error.statusCode && error.statusCode >= 400 && error.statusCode < 500 ? error.statusCode : 500;
    if (status === 500) logger.error({ reqId: request.id, err: error }, 'unexpected error');
    return problem(reply, status, status === 500 ? ErrorCode.INTERNAL_SERVER_ERROR : ErrorCode.BAD_REQUEST, status === 500 ? `Internal error (request ${request.id}).` : error.message);
  });
  app.setNotFoundHandler((request, reply) => problem(reply, 404, ErrorCode.NOT_FOUND, `No route ${request.method} ${request.url.split('?')[0]}.`));

  app.addHook('onRequest', async (request, reply) => {
    request.meta = {};
    reply.header('x-request-id', request.id);
  });
  app.addHook('onResponse', async (request, reply) => {
    if (request.routeOptions.url === '/graphql') metrics.request(reply.statusCode, request.meta?.operationType);
    logger.info({
      reqId: request.id,
      method: request.method,
      path: request.routeOptions.url ?? request.url.split('?')[0],
      status: reply.statusCode,
      durationMs: Math.round(reply.elapsedTime * 10) / 10,
      keyId: request.meta?.keyId,
      operationName: request.meta?.operationName,
      operationType: request.meta?.operationType,
      cost: request.meta?.cost,
      gates: request.meta?.gates,
      budgetStoreMs: request.meta?.budgetStoreMs,
    }, 'request');
  });

  app.get('/health', async () => ({ status: 'ok' }));
  const metricsApp = await registerMetricsRoute({ app, metrics, token: config.metricsToken, port: config.metricsPort, host: config.host });
  // Readiness for a load balancer: 503 only when this instance cannot serve. A limiter store down
  // in insurance/open mode is degraded (the instance keeps serving), not unready: taking every
  // instance out of rotation at once would turn a Redis blip into a full outage.
  app.get('/ready', async (_request, reply) => {
    const [db, limiter] = await Promise.all([
      withTimeout(database.ping(), config.databaseTimeoutMs, 'database ping').then(
        () => (databaseWatch.succeeded(), true),
        (error: unknown) => (databaseWatch.failed(error), false),
      ),
      store.healthy(),
    ]);
    const canServe = db && (limiter || config.onStoreFailure !== 'closed');
    const status = !canServe ? 'unavailable' : limiter ? 'ready' : 'degraded';
    const body = { status, database: db ? 'up' : 'down', limiterStore: store.kind === 'redis' ? (limiter ? 'up' : 'down') : 'memory', onStoreFailure: config.onStoreFailure };
    return reply.code(canServe ? 200 : 503).send(body);
  });

  // The bench's bare baseline: no key gate either, every request acts as one built-in key.
  const bareKey = { id: '00000000-0000-4000-8000-000000000000', name: 'bare', scopes: config.scopes, expiresAt: null, limits: new Map(), budget: null };
  const contextFor = async (request: FastifyRequest): Promise<Context> => {
    // The IP gate's request budget is taken once per request, lazily: a key this instance has
    // already verified has it checked by the operation gate in the same round trip as its own
    // budget; anything else (no key, a guess, a database lookup) waits for it right here,
    // together with the failed-authentication block.
    let ipVerdict: Promise<IpVerdict> | undefined;
    const ipCheck = () => (ipVerdict ??= ipGate.admit(request.ip));
    const guard = async () => {
      for (const verdict of await Promise.all([ipCheck(), ipGate.blocked(request.ip)])) if (!verdict.ok) throw ipRefusal(verdict);
    };
    const candidate = readKeyHeader(request);
    if (!candidate && !options.bare) await guard();
    const result = options.bare ? ({ ok: true, key: bareKey } as const) : await authenticator.authenticate(candidate, guard);
    if (!result.ok) {
      metrics.authFailure(result.reason);
      if (result.reason !== 'missing') await ipGate.recordAuthFailure(request.ip);
      throw result.reason === 'missing'
        ? unauthenticated('An API key is required: send it in the x-api-key header.')
        : // One message for malformed, unknown, revoked and expired keys: no oracle for guessing.
          unauthenticated('The API key is not valid.');
    }
    built.rememberKey(result.key);
    request.meta.keyId = result.key.id;
    return {
      requestId: request.id,
      apiKey: result.key,
      db: database.db,
      keys,
      usage,
      loaders: createWeatherLoaders(database.db),
      cost: {},
      meta: request.meta,
      prepaid: new Map(),
      ipCheck: options.bare ? async () => ({ ok: true }) : ipCheck,
      ipRefusal,
    };
  };

  const apolloHandler = fastifyApolloHandler(apollo, { context: contextFor });
  // The backstop for "nothing waits unbounded": whatever a request waits for (a resolver on a
  // silent database, a stuck dependency), the client gets a coded 503 by the deadline.
  const handler = async function (this: FastifyInstance, request: FastifyRequest, reply: FastifyReply) {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<FastifyReply>((resolve) => {
      timer = setTimeout(() => {
        (request.meta.gates ??= []).push('deadline');
        logger.error({ reqId: request.id, timeoutMs: config.requestTimeoutMs }, 'request exceeded REQUEST_TIMEOUT_MS');
        resolve(problem(reply.header('retry-after', '5'), 503, ErrorCode.SERVICE_UNAVAILABLE, `The request did not complete within ${config.requestTimeoutMs} ms; try again shortly.`, { retryAfter: 5 }));
      }, config.requestTimeoutMs);
    });
    try {
      return await Promise.race([apolloHandler.call(this, request as never, reply as never), deadline]);
    } finally {
      clearTimeout(timer);
    }
  };
  /** The error for a refused address: 429 with Retry-After, or 503 when the store is down and closed. */
  const ipRefusal = (verdict: Exclude<IpVerdict, { ok: true }>) => {
    metrics.rejected(verdict.reason === 'auth-failures' ? 'auth-failures' : 'ip');
    if (verdict.reason === 'store') return serviceUnavailable('Rate limiting is temporarily unavailable; try again shortly.');
    const ext = limitExtensions({ limit: verdict.limit, remaining: 0, msBeforeNext: verdict.msBeforeNext });
    const message = verdict.reason === 'auth-failures'
      ? `Too many failed authentications from this address; retry in ${ext.retryAfter} s.`
      : `Too many requests from this address; retry in ${ext.retryAfter} s.`;
    return new ApiError(ErrorCode.RATE_LIMITED, message, { gate: verdict.reason === 'rate' ? 'ip' : 'auth-failures', ...ext }, 429, { 'retry-after': String(ext.retryAfter) });
  };
  // The character limit is checked on the raw request, before Apollo parses anything.
  const sizeHook = async (request: FastifyRequest, reply: FastifyReply) => {
    const operations = Array.isArray(request.body) ? request.body : [request.body ?? request.query];
    for (const op of operations) {
      const query = (op as { query?: unknown } | null)?.query;
      if (typeof query === 'string' && query.length > config.armor.maxChars) {
        return problem(reply, 400, ErrorCode.QUERY_TOO_COMPLEX, `The query has ${query.length} characters; the most allowed is ${config.armor.maxChars}.`, { maxChars: config.armor.maxChars });
      }
    }
  };
  for (const method of ['GET', 'POST'] as const) {
    app.route({ method, url: '/graphql', preHandler: sizeHook, handler });
  }

  let closed = false;
  return {
    app,
    apollo,
    database,
    store,
    authenticator,
    keys,
    fieldGate,
    metrics,
    logger,
    async listen() {
      return app.listen({ host: config.host, port: config.port });
    },
    async close() {
      if (closed) return;
      closed = true;
      // Stop accepting, drain in-flight requests (Apollo's drain plugin), then flush and close.
      await app.close();
      await metricsApp?.close();
      await apollo.stop();
      await authenticator.close().catch((error: unknown) => logger.error({ err: { message: describeFailure(error) } }, 'could not record last_used_at at shutdown'));
      subscriber?.disconnect();
      await store.close();
      if (ownsDatabase) await database.close();
    },
  };
}

/** x-api-key, or Authorization: Bearer. Two different keys in one request are refused. */
function readKeyHeader(request: FastifyRequest): string | undefined {
  const header = request.headers['x-api-key'];
  if (Array.isArray(header)) throw badRequest('Send one x-api-key header.');
  const authorization = request.headers.authorization;
  let bearer: string | undefined;
  if (authorization !== undefined) {
    const match = /^Bearer[ ]+(\S+)\s*$/i.exec(authorization);
    if (!match) throw unauthenticated('The Authorization header must be "Bearer <api key>".');
    bearer = match[1];
  }
  const key = header?.trim();
  if (key && bearer && key !== bearer) throw badRequest('Two different API keys were sent (x-api-key and Authorization); send one.');
  return key || bearer;
}

/**
 * Records the operation for the access log, and ties every masked internal error to the request
 * id: the client gets the id, the log gets the real error under it.
 */
function accessLogPlugin(logger: Logger): ApolloServerPlugin<Context> {
  return {
    async requestDidStart() {
      return {
        async didResolveOperation({ operation, operationName, contextValue }) {
          contextValue.meta.operationName = operationName;
          contextValue.meta.operationType = operation?.operation;
        },
        async didEncounterErrors({ errors, contextValue }) {
          for (const error of errors) {
            if (!isUnexpected(error)) continue;
            const original = error.originalError ?? error;
            logger.error({ reqId: contextValue?.requestId, err: { message: original.message, stack: original.stack } }, 'unexpected error in GraphQL execution');
          }
        },
        async willSendResponse({ response, contextValue }) {
          if (response.body.kind !== 'single' || !response.body.singleResult.errors) return;
          response.body.singleResult.errors = response.body.singleResult.errors.map((e) =>
            e.extensions?.code === ErrorCode.INTERNAL_SERVER_ERROR
              ? { ...e, message: `Internal error; quote request id ${contextValue.requestId}.`, extensions: { ...e.extensions, requestId: contextValue.requestId } }
              : e,
          );
        },
      };
    },
  };
}

/**
 * Clients never see an internal message or stack: anything that is not one of our coded errors
 * (or graphql-js's and Apollo's own) becomes a generic INTERNAL_SERVER_ERROR; the access-log
 * plugin adds the request id and logs the real error under it.
 */
function maskUnexpected(formatted: GraphQLFormattedError, error: unknown): GraphQLFormattedError {
  const original = error instanceof GraphQLError ? error.originalError : error;
  if (isDependencyFailure(original)) {
    return { message: 'A service this API depends on is temporarily unavailable; try again shortly.', locations: formatted.locations, path: formatted.path, extensions: { code: ErrorCode.SERVICE_UNAVAILABLE, retryAfter: 5 } };
  }
  if (isUnexpected(error)) {
    return { message: 'Internal error.', locations: formatted.locations, path: formatted.path, extensions: { code: ErrorCode.INTERNAL_SERVER_ERROR } };
  }
  // graphql-js's and Apollo's own request errors sometimes carry no code: they are the client's.
  if (formatted.extensions?.code === ErrorCode.INTERNAL_SERVER_ERROR) return { ...formatted, extensions: { ...formatted.extensions, code: ErrorCode.BAD_REQUEST } };
  return formatted;
}

/** An exception thrown somewhere (a bug, a dead database), as opposed to an error made for the client. */
function isUnexpected(error: unknown): boolean {
  if (!(error instanceof GraphQLError)) return true;
  const code = error.extensions?.code;
  if (code && code !== ErrorCode.INTERNAL_SERVER_ERROR) return false;
  return code === ErrorCode.INTERNAL_SERVER_ERROR || (!!error.originalError && !(error.originalError instanceof GraphQLError));
}

