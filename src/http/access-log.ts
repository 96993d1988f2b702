import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ApolloServerPlugin } from '@apollo/server';
import type { Logger } from 'pino';
import type { RequestMeta } from '../gates/pipeline';
import type { TollgateContext } from '../graphql/context';
import type { Metrics } from './metrics';

/** What one access line is made of, whatever server answered the request. */
export type AccessFacts = {
  requestId: string;
  method: string;
  /** The request's URL or path; the query string is dropped. */
  url: string;
  status: number;
  durationMs: number;
  /** The client's address as the IP gate counts it (after TRUST_PROXY); meta.ip when the gates saw the request. */
  ip?: string;
  userAgent?: string | string[];
  /** What the gates found (absent for a request that never reached them: a 404, a transport error). */
  meta?: RequestMeta | null;
};

/**
 * The one access line, written by the bundled server and by the library's request log plugin
 * alike (msg "request"): who asked (address, user agent), what (method, path, operation), what it
 * cost, and — for every refusal — which gate refused it and, for the key gate, why. Never a key:
 * only the key's id once it is known. Text the client chose is cut (see cut).
 */
export function accessLine(f: AccessFacts): Record<string, unknown> {
  const m = f.meta;
  const userAgent = Array.isArray(f.userAgent) ? f.userAgent[0] : f.userAgent;
  return {
    reqId: f.requestId,
    method: f.method,
    path: pathOf(f.url),
    status: f.status,
    durationMs: Math.round(f.durationMs * 10) / 10,
    ip: m?.ip ?? f.ip,
    userAgent: userAgent && cut(userAgent, USER_AGENT_CHARS),
    keyId: m?.keyId,
    reason: m?.reason,
    operationName: m?.operationName ? cut(m.operationName) : undefined,
    operationType: m?.operationType,
    cost: m?.cost,
    gates: m?.gates,
    budgetStoreMs: m?.budgetStoreMs,
  };
}

/** A user agent is an attacker's to choose: enough to recognise a tool, no more. */
const USER_AGENT_CHARS = 200;

/** A request's path as Tollgate repeats it (404 message, access log): without the query string, cut. */
export function pathOf(url: string): string {
  return cut(url.split('?')[0]);
}

/**
 * Text the client chose (a path, up to the 16 KB header limit; an operation name, up to the body
 * limit), cut to 256 characters: the client must not choose the size of our answers and log lines.
 */
export function cut(text: string, max = 256): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** An HTTP exchange as tollgate.context saw it, until the request log plugin writes its line. */
export type Exchange = { req: IncomingMessage; res?: ServerResponse; startedAt: number; requestId: string; meta: RequestMeta; logged?: boolean };

/**
 * Exchanges by their request's meta (what the plugin finds in the context) or by the error that
 * refused the context (what Apollo hands contextCreationDidFail): weak, so nothing outlives a request.
 */
const exchanges = new WeakMap<object, Exchange>();

/** @internal tollgate.context records each exchange it sees. */
export function rememberExchange(key: object, exchange: Exchange) {
  exchanges.set(key, exchange);
}

/**
 * The bundled server's access line for an owner's Apollo server (standalone or Express): one
 * line per HTTP request that came through `tollgate.context`, written when its response is done,
 * with the status the client got — refusals by the IP and key gates (the context failed, so
 * Apollo runs no request hooks for them) included. It counts them in tollgate_requests_total too.
 */
export function requestLogPlugin(tollgate: { services: { logger: Logger; metrics: Metrics } }): ApolloServerPlugin<TollgateContext> {
  const { logger, metrics } = tollgate.services;
  const watch = (exchange: Exchange | undefined) => {
    if (!exchange?.res || exchange.logged) return; // a batch's operations share one exchange: one line
    exchange.logged = true;
    const { req, res } = exchange;
    const write = () => {
      // tollgate_requests_total, as the bundled server counts its /graphql requests.
      metrics.request(res.statusCode, exchange.meta.operationType);
      logger.info(
        accessLine({
          requestId: exchange.requestId,
          method: req.method ?? 'GET',
          url: (req as { originalUrl?: string }).originalUrl ?? req.url ?? '/',
          status: res.statusCode,
          durationMs: performance.now() - exchange.startedAt,
          userAgent: req.headers['user-agent'],
          meta: exchange.meta,
        }),
        'request',
      );
    };
    if (res.writableFinished || res.destroyed) write();
    else res.once('close', write);
  };
  return {
    async contextCreationDidFail({ error }) {
      watch(exchanges.get(error));
    },
    async requestDidStart({ contextValue }) {
      const meta = contextValue.admission?.meta;
      if (meta) watch(exchanges.get(meta));
    },
  };
}
