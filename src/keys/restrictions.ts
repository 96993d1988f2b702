import { canonicalRange, checkOrigin, inAnyRange, parseRange, type AddressRange } from '../gates/addresses';
import { fail, type Failure } from './limits-input';

/**
 * Where a key may be used from, compiled once when the key is cached: client address ranges and
 * browser origins. A request must match both lists that are not empty.
 */
export type KeyRestrictions = Readonly<{ ips: readonly AddressRange[] | null; origins: ReadonlySet<string> | null }>;

/** At most this many entries in either list: a key's allowlist is a few networks, not a firewall. */
export const MAX_RESTRICTIONS = 100;

/** The restrictions of a key's stored lists; undefined when it has none (the common case costs one check). */
export function compileRestrictions(allowedIps: readonly string[], allowedOrigins: readonly string[]): KeyRestrictions | undefined {
  if (allowedIps.length === 0 && allowedOrigins.length === 0) return undefined;
  const ips = allowedIps.length ? allowedIps.map(parseRange).filter((r): r is AddressRange => r !== null) : null;
  return Object.freeze({
    // A stored entry that no longer parses matches nothing: the key stays restricted, never opens up.
    ips,
    origins: allowedOrigins.length ? new Set(allowedOrigins) : null,
  });
}

/**
 * Whether a request from `ip` (as the IP gate sees it, after TRUST_PROXY) with this Origin header
 * may use the key. A key restricted to origins refuses a request without one: browsers send Origin
 * on every cross-origin request and every POST, so only a non-browser client (or a same-origin GET)
 * omits it — and such a client is what an origin-restricted, publishable key is not for.
 */
export function admits(restrictions: KeyRestrictions, ip: string, origin: string | string[] | undefined): boolean {
  if (restrictions.ips && !inAnyRange(ip, restrictions.ips)) return false;
  if (restrictions.origins && (typeof origin !== 'string' || !restrictions.origins.has(origin))) return false;
  return true;
}

/** `allowedIps` as stored (canonical ranges, each once), or the first entry that is not a range. */
export function normalizeAllowedIps(values: readonly string[]): { ok: true; value: string[] } | Failure {
  if (values.length > MAX_RESTRICTIONS) return fail('BAD_USER_INPUT', `"allowedIps" may hold at most ${MAX_RESTRICTIONS} entries.`, 'allowedIps');
  const out: string[] = [];
  for (const value of values) {
    const range = parseRange(value);
    if (!range) return fail('BAD_USER_INPUT', `"${value}" in "allowedIps" is not an IP address or CIDR range (like 203.0.113.0/24 or 2001:db8::/48).`, 'allowedIps');
    out.push(canonicalRange(range));
  }
  return { ok: true, value: [...new Set(out)] };
}

/** `allowedOrigins` as stored (each once), or the first entry that is not an exact origin. */
export function normalizeAllowedOrigins(values: readonly string[]): { ok: true; value: string[] } | Failure {
  if (values.length > MAX_RESTRICTIONS) return fail('BAD_USER_INPUT', `"allowedOrigins" may hold at most ${MAX_RESTRICTIONS} entries.`, 'allowedOrigins');
  const out: string[] = [];
  for (const value of values) {
    const checked = checkOrigin(value);
    if (!checked.ok) return fail('BAD_USER_INPUT', `${checked.reason} (in "allowedOrigins").`, 'allowedOrigins');
    out.push(checked.origin);
  }
  return { ok: true, value: [...new Set(out)] };
}
