import ipaddr from 'ipaddr.js';

/**
 * Client addresses, read once and strictly, with ipaddr.js (the parser Fastify's proxy-addr uses).
 * Pure: no I/O, no configuration read here.
 */

type Address = ipaddr.IPv4 | ipaddr.IPv6;

/**
 * The address `text` names, or null. IPv4 only in dotted-quad form ("127.1" and "0x7f.0.0.1" are
 * valid to inet_aton, but no proxy writes them: they are a client's trick); an IPv4-mapped IPv6
 * address (`::ffff:198.51.100.9`, how a dual-stack socket reports an IPv4 peer) is the IPv4 address.
 */
export function parseAddress(text: string): Address | null {
  const s = text.trim();
  if (ipaddr.IPv4.isValidFourPartDecimal(s)) return ipaddr.IPv4.parse(s);
  if (!ipaddr.IPv6.isValid(s)) return null;
  const v6 = ipaddr.IPv6.parse(s);
  // A zone (fe80::1%eth0) names an interface of the host that wrote it, not a different client:
  // kept, it would let whoever writes the text pick a fresh budget key.
  v6.zoneId = undefined;
  return v6.isIPv4MappedAddress() ? v6.toIPv4Address() : v6;
}

/** The canonical spelling of an address (RFC 5952 for IPv6, mapped IPv4 unmapped), or null. */
export function canonicalAddress(text: string): string | null {
  const address = parseAddress(text);
  if (!address) return null;
  return address.kind() === 'ipv6' ? (address as ipaddr.IPv6).toRFC5952String() : address.toString();
}

/**
 * Who an address is counted as by the IP budget and the failed-authentication block: an IPv4
 * address itself, an IPv6 address by its /`v6PrefixLength` network (one user, one household or
 * one VM is handed a /64 or a /56; counting each address would let it rotate through 2^64 fresh
 * budgets), as express-rate-limit v8's ipKeyGenerator does. Anything else (a socket with no
 * address) is counted as it is.
 */
export function addressBucket(ip: string, v6PrefixLength: number): string {
  const address = parseAddress(ip);
  if (!address) return ip;
  if (address.kind() === 'ipv4') return address.toString();
  if (v6PrefixLength >= 128) return (address as ipaddr.IPv6).toRFC5952String();
  const network = ipaddr.IPv6.networkAddressFromCIDR(`${(address as ipaddr.IPv6).toNormalizedString()}/${v6PrefixLength}`);
  return `${network.toRFC5952String()}/${v6PrefixLength}`;
}

/** A CIDR range or a single address, parsed (an IPv4-mapped IPv6 range becomes the IPv4 one). */
export type AddressRange = [Address, number];

/** `text` as a range (`203.0.113.0/24`, `2001:db8::/48`, or one address), or null if it is neither. */
export function parseRange(text: string): AddressRange | null {
  const s = text.trim();
  const slash = s.indexOf('/');
  if (slash === -1) {
    const address = parseAddress(s);
    return address ? [address, address.kind() === 'ipv4' ? 32 : 128] : null;
  }
  const bitsText = s.slice(slash + 1);
  if (!/^\d{1,3}$/.test(bitsText)) return null;
  const bits = Number(bitsText);
  const base = s.slice(0, slash);
  if (ipaddr.IPv4.isValidFourPartDecimal(base)) return bits <= 32 ? [ipaddr.IPv4.parse(base), bits] : null;
  if (!ipaddr.IPv6.isValid(base) || bits > 128 || base.includes('%')) return null;
  const v6 = ipaddr.IPv6.parse(base);
  if (v6.isIPv4MappedAddress() && bits >= 96) return [v6.toIPv4Address(), bits - 96];
  return [v6, bits];
}

/** The range's canonical spelling (network address and length), as it is stored and shown. */
export function canonicalRange([address, bits]: AddressRange): string {
  const full = address.kind() === 'ipv4' ? 32 : 128;
  const network = address.kind() === 'ipv4' ? ipaddr.IPv4.networkAddressFromCIDR(`${address}/${bits}`) : ipaddr.IPv6.networkAddressFromCIDR(`${(address as ipaddr.IPv6).toNormalizedString()}/${bits}`);
  const text = network.kind() === 'ipv6' ? (network as ipaddr.IPv6).toRFC5952String() : network.toString();
  return bits === full ? text : `${text}/${bits}`;
}

/** Whether `ip` lies in any of `ranges` (an address of the other family never does). */
export function inAnyRange(ip: string, ranges: readonly AddressRange[]): boolean {
  const address = parseAddress(ip);
  if (!address) return false;
  return ranges.some(([base, bits]) => base.kind() === address.kind() && address.match(base, bits));
}

/**
 * `text` if it is an exact origin (`https://app.example.com`, `http://localhost:5173`: scheme, host,
 * and a port only where it is not the default), written as browsers send it in the Origin header;
 * otherwise the reason, with the spelling that would be accepted where there is one.
 */
export function checkOrigin(text: string): { ok: true; origin: string } | { ok: false; reason: string } {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return { ok: false, reason: `"${text}" is not an origin (like https://app.example.com)` };
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return { ok: false, reason: `"${text}" is not an http or https origin` };
  if (url.username || url.password || url.search || url.hash || url.pathname !== '/' || url.origin !== text) {
    const hint = url.username || url.password ? '' : `; write it as "${url.origin}"`;
    return { ok: false, reason: `"${text}" is not an origin as browsers send it (scheme://host[:port], no path, lower case)${hint}` };
  }
  return { ok: true, origin: url.origin };
}
