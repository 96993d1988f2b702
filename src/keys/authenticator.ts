import { LRUCache } from 'lru-cache';
import type { Database } from '../db/client';
import { hashKey, MAX_KEY_LENGTH, parseKey } from './format';
import { findActiveKeyByHash, toAuthenticatedKey, touchLastUsed, type ApiKeyRow } from './repository';
import type { AuthenticatedKey } from './types';

export type AuthFailure = 'missing' | 'malformed' | 'invalid';
export type AuthResult = { ok: true; key: AuthenticatedKey } | { ok: false; reason: AuthFailure };

const NOT_FOUND = 'not-found' as const;
/** `until`: when this secret stops working (key expiry, or the end of a rotation's grace period). */
type Entry = { key: AuthenticatedKey; until: number } | typeof NOT_FOUND;

/**
 * Key gate: format and checksum first (no I/O), then an in-process cache keyed by the key's
 * hash, then Postgres on a miss. Unknown keys are cached negatively for a few seconds, so a
 * flood of one bad key costs one query. `last_used_at` is recorded in memory and written in
 * one batched UPDATE per flush interval, never per request.
 */
function validUntil(row: ApiKeyRow, hash: string): number {
  const ends = [row.expiresAt?.getTime() ?? Infinity];
  if (row.hash !== hash) ends.push(row.previousHashExpiresAt?.getTime() ?? 0);
  return Math.min(...ends);
}

export class KeyAuthenticator {
  private readonly cache: LRUCache<string, Entry>;
  private readonly seen = new Set<string>();
  private readonly flushTimer: NodeJS.Timeout;

  constructor(
    private readonly options: {
      db: Database;
      prefix: string;
      cacheTtlMs: number;
      negativeCacheTtlMs: number;
      lastUsedFlushMs: number;
      onFlushError?: (error: unknown) => void;
      /** Told about every cache lookup (metrics). */
      onLookup?: (hit: boolean) => void;
      /** The time, in ms: expiry and grace periods are judged against it. */
      now?: () => number;
    },
  ) {
    this.cache = new LRUCache<string, Entry>({ max: 50_000, ttl: Math.max(options.cacheTtlMs, 1), ttlAutopurge: false });
    this.flushTimer = setInterval(() => void this.flushLastUsed().catch(options.onFlushError), options.lastUsedFlushMs);
    this.flushTimer.unref();
  }

  /**
   * `guard` runs wherever the answer is not already known to be a valid key: before a database
   * lookup and before a failure is returned. The brute-force block lives there, so a known key
   * pays nothing for it and every guess is checked.
   */
  async authenticate(candidate: string | undefined, guard: () => Promise<void> = async () => {}): Promise<AuthResult> {
    if (candidate === undefined || candidate === '') return { ok: false, reason: 'missing' };
    if (candidate.length > MAX_KEY_LENGTH) return guard().then(() => ({ ok: false, reason: 'malformed' }));
    const parsed = parseKey(candidate, this.options.prefix);
    if (!parsed.ok) return guard().then(() => ({ ok: false, reason: 'malformed' }));

    const hash = hashKey(parsed.key);
    let entry = this.options.cacheTtlMs > 0 ? this.cache.get(hash) : undefined;
    this.options.onLookup?.(!!entry);
    if (!entry || entry === NOT_FOUND) await guard();
    if (!entry) {
      const row = await findActiveKeyByHash(this.options.db, hash, new Date(this.now()));
      entry = row ? { key: toAuthenticatedKey(row), until: validUntil(row, hash) } : NOT_FOUND;
      if (this.options.cacheTtlMs > 0) {
        this.cache.set(hash, entry, entry === NOT_FOUND ? { ttl: Math.max(this.options.negativeCacheTtlMs, 1) } : undefined);
      }
    }
    if (entry === NOT_FOUND) return { ok: false, reason: 'invalid' };
    // A cached key may have expired, or its old secret's grace period ended, since it was cached.
    if (entry.until <= this.now()) {
      this.cache.delete(hash);
      return { ok: false, reason: 'invalid' };
    }
    this.seen.add(entry.key.id);
    return { ok: true, key: entry.key };
  }

  /** Drops every cached entry of a key (revoked, rotated, changed), and all negative entries. */
  invalidate(keyId: string): void {
    for (const [hash, entry] of this.cache.entries()) {
      if (entry === NOT_FOUND || entry.key.id === keyId) this.cache.delete(hash);
    }
  }

  private now(): number {
    return this.options.now?.() ?? Date.now();
  }

  async flushLastUsed(at = new Date()): Promise<void> {
    if (this.seen.size === 0) return;
    const ids = [...this.seen];
    this.seen.clear();
    await touchLastUsed(this.options.db, ids, at);
  }

  async close(): Promise<void> {
    clearInterval(this.flushTimer);
    await this.flushLastUsed();
  }
}
