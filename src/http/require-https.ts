import type { IncomingHttpHeaders } from 'node:http';
import { httpsRequired, type ApiError } from '../errors';

/** What the check reads from a request: Node's, Express's and Fastify's all fit. */
export type TransportFacts = {
  headers: IncomingHttpHeaders;
  /** A TLS socket has `encrypted: true` (Node's tls.TLSSocket). */
  socket?: object | null;
  /** Express's and Fastify's `req.protocol` (set up with the same proxy trust): used when present. */
  protocol?: unknown;
};

/**
 * Whether a request reached us over HTTPS: its own socket is TLS, or — behind `trustedProxies`
 * proxies of the owner's (TRUST_PROXY) — the outermost of them says so in X-Forwarded-Proto.
 * The header is read like X-Forwarded-For is for the client's address (tollgate.ts clientIp): the
 * entry that many from the right, where proxies append; without trusted proxies it is ignored,
 * since any client can write it.
 */
export function isHttps(req: TransportFacts, trustedProxies: number): boolean {
  if (typeof req.protocol === 'string') return req.protocol === 'https';
  if ((req.socket as { encrypted?: boolean } | null | undefined)?.encrypted === true) return true;
  if (trustedProxies <= 0) return false;
  const header = req.headers['x-forwarded-proto'];
  const hops = (Array.isArray(header) ? header.join(',') : header ?? '').split(',').map((p) => p.trim().toLowerCase()).filter(Boolean);
  return (hops[hops.length - trustedProxies] ?? hops[0]) === 'https';
}

/** Whether a request carries a credential: an x-api-key or any Authorization header. */
export function carriesKey(headers: IncomingHttpHeaders): boolean {
  return headers['x-api-key'] !== undefined || headers.authorization !== undefined;
}

/**
 * REQUIRE_HTTPS: the refusal (403 HTTPS_REQUIRED) for a request that carries a key over plain
 * HTTP, or null. Judged from the transport alone, before the key is read, so a right and a wrong
 * key get the same answer and an eavesdropper learns nothing; the key is not looked up, and the
 * address is not charged a failed authentication. Throw it from Apollo's context function, or
 * answer it from an Express middleware (README: Keys used safely).
 */
export function httpsRefusal(req: TransportFacts, options: { trustedProxies: number; requireHttps: boolean }): ApiError | null {
  if (!options.requireHttps || !carriesKey(req.headers) || isHttps(req, options.trustedProxies)) return null;
  return httpsRequired();
}
