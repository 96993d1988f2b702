import type { AddressInfo } from 'node:net';
import { readFileSync } from 'node:fs';
import type { Server as HttpsServer } from 'node:https';
import { createSecureContext } from 'node:tls';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import cors from '@fastify/cors';
import { ApolloServer, type ApolloServerPlugin } from '@apollo/server';
import { fastifyApolloDrainPlugin, fastifyApolloHandler } from '@as-integrations/fastify';
import { ApolloServerPluginLandingPageDisabled } from '@apollo/server/plugin/disabled';
import { ConfigError, type Config } from '../config';
import { ErrorCode, errorBody, httpsRequired, queryTooLong } from '../errors';
import { carriesKey, isHttps } from '../http/require-https';
import { requestMeta, type RequestMeta } from '../gates/pipeline';
import { registerMetricsRoute } from '../http/metrics-handler';
import { accessLine, pathOf } from '../http/access-log';
import { fastifyHandler } from '../http/node-handler';
import { healthHandler, readinessHandler } from '../http/health';
import { clientIp, createTollgate, type Tollgate, type TollgateContext } from '../tollgate';
import type { ServiceOptions } from '../services';
import { weatherExample } from '../weather';
import { newRequestId } from '../request-id';
import { registerAdminConsole } from '../http/admin-console-route';

export type ServerOptions = ServiceOptions & {
  config: Config;
  /** false: the bench's bare baseline — same schema and resolvers, every gate a no-op. */
  gates?: boolean;
};

/** The example's own per-request values, beside Tollgate's in every resolver's context. */
type WeatherValues = ReturnType<Awaited<ReturnType<typeof weatherExample>>['context']>;

export type Server = {
  app: FastifyInstance;
  apollo: ApolloServer<TollgateContext & WeatherValues>;
  tollgate: Tollgate<WeatherValues>;
} & Pick<Tollgate['services'], 'database' | 'store' | 'authenticator' | 'keys' | 'logger' | 'metrics'> & {
  /** Listens on config.host:config.port (0 = any free port); returns the base URL. */
  listen(): Promise<string>;
  /** With METRICS_PORT (0 = any free port): the base URL of the metrics listener, bound when the server is created. */
  metricsUrl?: string;
  /**
   * Reads TLS_CERT_FILE and TLS_KEY_FILE again and serves new connections with them (SIGHUP in
   * main.ts): a renewed certificate without a restart. A pair that does not load keeps the old one
   * and throws, naming the variable. False without TLS.
   */
  reloadTls(): boolean;
  /** What this server exposes, for the start-up log line (main.ts). */
  transport: { https: boolean; requireHttps: boolean; cors: readonly string[]; metrics: string };
  close(): Promise<void>;
};

declare module 'fastify' {
  interface FastifyRequest {
    meta: RequestMeta;
  }
}

/**
 * The bundled server: Tollgate's first user. The library (`createTollgate`) and the weather
 * example, exactly as an owner would put them together, served by Fastify, plus what only an
 * HTTP server can add: transport errors in the GraphQL shape, request ids, the access log,
 * /health, /ready, /metrics, a request deadline and a clean stop.
 */
export async function createServer(options: ServerOptions): Promise<Server> {
  const { config } = options;
  const tollgate = await createTollgate<WeatherValues>({ ...options, printAdminKey: false, context: () => weather.context() });
  const weather = await weatherExample(tollgate.database);
  const { logger, metrics } = tollgate.services;

  const tls = config.tls ? readTls(config.tls) : undefined;
  // The https option changes Fastify's server type, not its API: one FastifyInstance either way.
  const app = Fastify({
    ...(tls ? { https: tls } : {}),
    logger: false,
    // The socket's peer and the next trustedProxies - 1 hops are the owner's proxies: req.ip is the
    // address the outermost of them saw (see Config.trustedProxies). A function, because Fastify
    // reads a bare hop count as "trust nothing". The gates read the address with clientIp (same
    // rule), which also never takes an X-Forwarded-For entry that is not an address.
    trustProxy: config.trustedProxies > 0 ? (_address: string, hop: number) => hop < config.trustedProxies : false,
    bodyLimit: 1024 * 1024,
    genReqId: newRequestId,
    // Fastify's own closing answer is not in the GraphQL error shape: the onRequest hook answers instead.
    return503OnClosing: false,
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
  }) as unknown as FastifyInstance;
  app.decorateRequest('meta', null as unknown as RequestMeta);

  const apollo = new ApolloServer<TollgateContext & WeatherValues>({
    schema: tollgate.schema(weather),
    plugins: [
      fastifyApolloDrainPlugin<TollgateContext & WeatherValues>(app),
      ...tollgate.plugins,
      ...(config.env === 'production' ? [ApolloServerPluginLandingPageDisabled() as ApolloServerPlugin<TollgateContext & WeatherValues>] : []),
    ],
    allowBatchedHttpRequests: config.allowBatching,
    ...tollgate.apolloOptions,
    // main.ts owns the shutdown: Apollo's own signal handlers race it and can hang the stop.
    stopOnTerminationSignals: false,
  });
  await apollo.start();

  const problem = (reply: FastifyReply, status: number, code: ErrorCode, message: string, extensions: Record<string, unknown> = {}) =>
    reply.code(status).type('application/json').send(errorBody(code, message, extensions));

  // Transport errors (bad JSON, wrong content type, body too large) answer in GraphQL's shape.
  app.setErrorHandler((error: { statusCode?: number; message: string }, request, reply) => {
    const status = error.statusCode && error.statusCode >= 400 && error.statusCode < 500 ? error.statusCode : 500;
    if (status === 500) logger.error({ reqId: request.id, err: error }, 'unexpected error');
    return problem(reply, status, status === 500 ? ErrorCode.INTERNAL_SERVER_ERROR : ErrorCode.BAD_REQUEST, status === 500 ? `Internal error (request ${request.id}).` : error.message);
  });
  app.setNotFoundHandler((request, reply) => problem(reply, 404, ErrorCode.NOT_FOUND, `No route ${request.method} ${pathOf(request.url)}.`));

  let closed = false;
  app.addHook('onRequest', async (request, reply) => {
    request.meta = requestMeta();
    // The client's address, decided once (TRUST_PROXY): the gates count it, the access line names it.
    request.meta.ip = clientIp(request.raw, config.trustedProxies);
    reply.header('x-request-id', request.id);
    // The socket's TLS, or X-Forwarded-Proto from trusted proxies only (read like X-Forwarded-For).
    const https = isHttps(request.raw, config.trustedProxies);
    // Browsers that once saw this over HTTPS never try plain HTTP for it again (six months).
    if (https) reply.header('strict-transport-security', `max-age=${HSTS_MAX_AGE_SECONDS}`);
    if (closed) {
      // Stopping: in-flight requests finish, a new one is told to go elsewhere (and this connection ends).
      reply.header('connection', 'close').header('retry-after', '1');
      return problem(reply, 503, ErrorCode.SERVICE_UNAVAILABLE, 'This instance is shutting down; retry on another.', { retryAfter: 1 });
    }
    // REQUIRE_HTTPS: a key over plain HTTP is refused here, before the IP gate or the key gate read
    // anything: the same answer for a right and a wrong key, no lookup, no failure counted. The
    // probes stay reachable over HTTP (a load balancer's health checks seldom speak TLS).
    if (config.requireHttps && !https && carriesKey(request.headers) && !OPERATIONAL_ROUTES.has(pathOf(request.url))) {
      (request.meta.gates ??= []).push('https');
      const error = httpsRequired();
      return problem(reply, 403, ErrorCode.HTTPS_REQUIRED, error.message);
    }
  });
  // CORS_ORIGINS: preflights from those origins are answered (the key headers allowed), and their
  // responses name the origin; any other origin gets no Access-Control-Allow-Origin at all.
  if (config.corsOrigins.length > 0) {
    await app.register(cors, {
      origin: [...config.corsOrigins],
      methods: ['GET', 'POST'],
      allowedHeaders: ['x-api-key', 'authorization', 'content-type', 'apollo-require-preflight', 'x-apollo-operation-name'],
      // What a browser client may read of an answer: where it stands, and when to come back.
      // Every RATELIMIT_HEADERS form's names: a browser reads whichever this server sends.
      exposedHeaders: ['ratelimit', 'ratelimit-policy', 'ratelimit-limit', 'ratelimit-remaining', 'ratelimit-reset', 'x-ratelimit-limit', 'x-ratelimit-remaining', 'x-ratelimit-used', 'x-ratelimit-reset', 'x-ratelimit-resource', 'retry-after', 'x-request-id'],
      maxAge: 600,
    });
  }
  app.addHook('onResponse', async (request, reply) => {
    if (request.routeOptions.url === '/graphql') metrics.request(reply.statusCode, request.meta?.operationType);
    logger.info(accessLine({
      requestId: request.id,
      method: request.method,
      url: request.routeOptions.url ?? request.url,
      status: reply.statusCode,
      durationMs: reply.elapsedTime,
      // A request the parser refused before onRequest has no meta: its address is read here.
      ip: request.meta ? undefined : clientIp(request.raw, config.trustedProxies),
      userAgent: request.headers['user-agent'],
      meta: request.meta,
    }), 'request');
  });

  app.get('/health', fastifyHandler(healthHandler()));
  // ADMIN_CONSOLE: the browser console at /admin, a client of /graphql like any other.
  if (config.adminConsole) registerAdminConsole(app, (message) => logger.warn(message));
  // In production /metrics needs METRICS_TOKEN or its own METRICS_PORT; without either it is not mounted (404).
  const metricsApp = config.metricsEnabled ? await registerMetricsRoute({ app, metrics, token: config.metricsToken, port: config.metricsPort, host: config.host }) : null;
  app.get('/ready', fastifyHandler(readinessHandler(tollgate)));

  const apolloHandler = fastifyApolloHandler(apollo, {
    context: (request: FastifyRequest, reply: FastifyReply) => tollgate.contextFor({ requestId: request.id, ip: request.meta.ip ?? clientIp(request.raw, config.trustedProxies), headers: request.headers, response: reply.raw }, request.meta),
  });
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
  // The character limit is checked on the raw request, before Apollo parses anything.
  const sizeHook = async (request: FastifyRequest, reply: FastifyReply) => {
    const operations = Array.isArray(request.body) ? request.body : [request.body ?? request.query];
    for (const op of operations) {
      const query = (op as { query?: unknown } | null)?.query;
      if (typeof query === 'string' && query.length > config.armor.maxChars) {
        (request.meta.gates ??= []).push('hardening');
        const error = queryTooLong(query.length, config.armor.maxChars);
        return problem(reply, 400, ErrorCode.QUERY_TOO_COMPLEX, error.message, { maxChars: config.armor.maxChars });
      }
    }
  };
  for (const method of ['GET', 'POST'] as const) {
    app.route({ method, url: '/graphql', preHandler: sizeHook, handler });
  }

  const { database, store, authenticator, keys } = tollgate.services;
  return {
    app,
    apollo,
    tollgate,
    database,
    store,
    authenticator,
    keys,
    logger,
    metrics,
    metricsUrl: metricsApp ? `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${(metricsApp.server.address() as AddressInfo).port}` : undefined,
    async listen() {
      const url = await app.listen({ host: config.host, port: config.port });
      tollgate.serving(url);
      return url;
    },
    reloadTls() {
      if (!config.tls) return false;
      (app.server as unknown as HttpsServer).setSecureContext(readTls(config.tls));
      return true;
    },
    transport: {
      https: tls !== undefined,
      requireHttps: config.requireHttps,
      cors: config.corsOrigins,
      metrics: !config.metricsEnabled
        ? 'off (production: set METRICS_TOKEN, or METRICS_PORT for a port of its own, to serve /metrics)'
        : config.metricsPort !== undefined
          ? `on port ${config.metricsPort}${config.metricsToken ? ' (bearer token)' : ''}`
          : config.metricsToken
            ? 'on /metrics (bearer token)'
            : 'on /metrics (public)',
    },
    async close() {
      if (closed) return;
      closed = true;
      // Stop accepting, drain in-flight requests (Apollo's drain plugin), then flush and close.
      // Keep-alive sockets that finish their request during the drain, or were opened and never
      // used, would hold the close open until the client hangs up: close them as they go idle.
      const sweep = setInterval(() => app.server.closeIdleConnections(), 50);
      try {
        await app.close();
      } finally {
        clearInterval(sweep);
      }
      await metricsApp?.close();
      await apollo.stop();
      await tollgate.close();
    },
  };
}

/** At least six months (the HSTS preload list asks for one year; six months is the usual floor). */
const HSTS_MAX_AGE_SECONDS = 15_552_000;

/** Reachable over plain HTTP whatever REQUIRE_HTTPS says: probes and scrapers. */
const OPERATIONAL_ROUTES = new Set(['/health', '/ready', '/metrics']);

/**
 * The PEM pair, read and checked together: a missing file, or a key that is not the certificate's,
 * fails here with the variable named, not at the first handshake.
 */
function readTls(files: { certFile: string; keyFile: string }): { cert: Buffer; key: Buffer } {
  const read = (name: string, file: string) => {
    try {
      return readFileSync(file);
    } catch (error) {
      throw new ConfigError(`${name}: cannot read "${file}" (${(error as NodeJS.ErrnoException).code ?? String(error)})`);
    }
  };
  const pair = { cert: read('TLS_CERT_FILE', files.certFile), key: read('TLS_KEY_FILE', files.keyFile) };
  try {
    createSecureContext(pair);
  } catch (error) {
    throw new ConfigError(`TLS_CERT_FILE / TLS_KEY_FILE: "${files.certFile}" and "${files.keyFile}" are not a PEM certificate and its private key (${(error as Error).message})`);
  }
  return pair;
}
