import crypto, { createHash, randomBytes } from 'node:crypto';
import { crc32 } from 'node:zlib';

// Key format, after GitHub's token scheme: `<prefix>_<body><checksum>`.
//   body      32 base62 chars from crypto.randomBytes (~190 bits of entropy)
//   checksum  6 base62 chars of CRC32(body): a typo or a truncated paste is refused locally,
//             without touching the cache or the database, and scanners can recognise leaks.
const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const BODY_LENGTH = 32;
const CHECKSUM_LENGTH = 6;
const BASE62 = /^[0-9A-Za-z]+$/;
/** Longest key accepted before any work is done on it (a 64 KB header is refused in O(1)). */
export const MAX_KEY_LENGTH = 64;

function toBase62(value: bigint, length: number): string {
  let out = '';
  for (let i = 0; i < length; i++) {
    out = ALPHABET[Number(value % 62n)] + out;
    value /= 62n;
  }
  return out;
}

function checksum(body: string): string {
  // CRC32 fits a double exactly, so plain arithmetic (checked on every key a client sends).
  let value = crc32(body);
  let out = '';
  for (let i = 0; i < CHECKSUM_LENGTH; i++) {
    out = ALPHABET[value % 62] + out;
    value = Math.floor(value / 62);
  }
  return out;
}

export function generateKey(prefix: string): string {
  // 24 random bytes = 192 bits; 62^32 > 2^190, so the body keeps almost all of it.
  const body = toBase62(BigInt('0x' + randomBytes(24).toString('hex')), BODY_LENGTH);
  return `${prefix}_${body}${checksum(body)}`;
}

export type ParsedKey = { ok: true; key: string } | { ok: false; reason: 'malformed' | 'checksum' };

/** Pure check of shape and checksum: no I/O, constant work for any input. */
export function parseKey(candidate: string, prefix: string): ParsedKey {
  const expectedLength = prefix.length + 1 + BODY_LENGTH + CHECKSUM_LENGTH;
  if (candidate.length !== expectedLength || !candidate.startsWith(prefix + '_')) return { ok: false, reason: 'malformed' };
  const rest = candidate.slice(prefix.length + 1);
  if (!BASE62.test(rest)) return { ok: false, reason: 'malformed' };
  const body = rest.slice(0, BODY_LENGTH);
  if (checksum(body) !== rest.slice(BODY_LENGTH)) return { ok: false, reason: 'checksum' };
  return { ok: true, key: candidate };
}

/** The stored form of a key. Lookups go through this hash, never a comparison of secrets. */
export function hashKey(key: string): string {
  return oneShotHash ? oneShotHash('sha256', key, 'hex') : createHash('sha256').update(key).digest('hex');
}
// crypto.hash (Node 20.12+, 21.7+) hashes without building a Hash object: this runs on every request.
const oneShotHash = (crypto as { hash?: (algorithm: string, data: string, encoding: 'hex') => string }).hash;

/** Short non-secret prefix kept for display: prefix + 4 chars of the body. */
export function displayStart(key: string, prefix: string): string {
  return key.slice(0, prefix.length + 1 + 4);
}
