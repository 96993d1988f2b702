import { createHash } from 'node:crypto';

/**
 * The forms a client may read a key's operation budget in (RATELIMIT_HEADERS):
 *   draft-8  `RateLimit-Policy` / `RateLimit` as Structured Fields (draft-ietf-httpapi-ratelimit-headers
 *            -08 and later): every window named, with a partition key
 *   draft-7  `RateLimit: limit=…, remaining=…, reset=…` (one field) with `RateLimit-Policy: 100;w=60, …`
 *   draft-6  `RateLimit-Limit` / `RateLimit-Remaining` / `RateLimit-Reset` (seconds from now)
 *   github   `x-ratelimit-limit` / `-remaining` / `-used` / `-reset` (epoch seconds) / `-resource`
 *   off      none (extensions.cost and the rateLimit query still tell)
 * The older forms carry one window: the one the client must watch (the tightest, or the one that refused).
 */
export type RateLimitHeaderMode = 'draft-8' | 'draft-7' | 'draft-6' | 'github' | 'off';
export const RATE_LIMIT_HEADER_MODES = ['draft-8', 'draft-7', 'draft-6', 'github', 'off'] as const;

/** One window of the budget as the headers name it. */
export type PolicyWindow = { name: string; limit: number; duration: number; partition: string };

/** Where the reported window stands, or null when the budget was never read (refused at the IP gate). */
export type Standing = { name: string; limit: number; remaining: number; resetAt: number } | null;

export function rateLimitHeaders(mode: RateLimitHeaderMode, windows: readonly PolicyWindow[], standing: Standing, now = Date.now()): Record<string, string> {
  const seconds = standing ? Math.max(0, Math.ceil((standing.resetAt - now) / 1000)) : 0;
  switch (mode) {
    case 'off':
      return NO_HEADERS;
    case 'draft-8': {
      const policy = windows.map((w) => `"${w.name}";q=${w.limit};w=${w.duration};pk=:${partitionKey(w.partition)}:`).join(', ');
      if (!standing) return { 'ratelimit-policy': policy };
      const reported = windows.find((w) => w.name === standing.name);
      const pk = reported ? `;pk=:${partitionKey(reported.partition)}:` : '';
      return { 'ratelimit-policy': policy, ratelimit: `"${standing.name}";r=${standing.remaining};t=${seconds}${pk}` };
    }
    case 'draft-7': {
      const policy = windows.map((w) => `${w.limit};w=${w.duration}`).join(', ');
      if (!standing) return { 'ratelimit-policy': policy };
      return { 'ratelimit-policy': policy, ratelimit: `limit=${standing.limit}, remaining=${standing.remaining}, reset=${seconds}` };
    }
    case 'draft-6':
      if (!standing) return NO_HEADERS;
      return { 'ratelimit-limit': String(standing.limit), 'ratelimit-remaining': String(standing.remaining), 'ratelimit-reset': String(seconds) };
    case 'github':
      if (!standing) return NO_HEADERS;
      return {
        'x-ratelimit-limit': String(standing.limit),
        'x-ratelimit-remaining': String(standing.remaining),
        'x-ratelimit-used': String(standing.limit - standing.remaining),
        'x-ratelimit-reset': String(Math.ceil(standing.resetAt / 1000)),
        'x-ratelimit-resource': standing.name,
      };
  }
}

const NO_HEADERS: Record<string, string> = Object.freeze({}) as Record<string, string>;

/**
 * The draft's partition key (`pk`, a Byte Sequence): which budget the numbers belong to, so a
 * client holding several keys (or keys of one consumer, which share one) can tell them apart.
 * Derived from the id whose counter it is — a key id or a consumer id, never the secret — and
 * hashed, so it names the partition without publishing the id: the first 12 bytes of SHA-256.
 * Remembered per id (hashing costs ~1 µs; a few thousand ids fit).
 */
export function partitionKey(id: string): string {
  let pk = partitionKeys.get(id);
  if (pk === undefined) {
    if (partitionKeys.size >= 10_000) partitionKeys.clear();
    pk = createHash('sha256').update(`tollgate-partition:${id}`).digest().subarray(0, 12).toString('base64');
    partitionKeys.set(id, pk);
  }
  return pk;
}
const partitionKeys = new Map<string, string>();
