import { LRUCache } from 'lru-cache';
import type { Database } from '../db/client';
import { hashKey, MAX_KEY_LENGTH, parseKey } from './format';
import { findKeyByHash, stateOf, toAuthenticatedKey, touchLastUsed, type ApiKeyRow } from './repository';
import type { AuthenticatedKey } from './types';
import { admits } from './restrictions';
import { serviceUnavailable } from '../errors';
import { withTimeout } from '../timeout';

/**
 * Why a key was refused — for the log and metrics only: the client hears one message for all but
 * `missing` (no oracle). `unknown`: no such key; `revoked`; `expired`: the key's expiry, or an old
 * secret past its rotation grace; `restricted`: a valid key used from an address or origin it does
 * not allow.
 */
export type AuthFailure = 'missing' | 'malformed' | 'unknown' | 'revoked' | 'expired' | 'restricted';
/** Where a request comes from: the client's address as the IP gate sees it, and its Origin header. */
export type RequestSource = { ip: string; origin?: string | string[] };
export type AuthResult = { ok: true; key: AuthenticatedKey } | { ok: false; reason: AuthFailure };

/**
 * `until`: when this secret stops working (key expiry, or the end of a rotation's grace period).
 * `fetchedAt`: when the database said so; the entry is fresh for the cache TTL, and usable while
 * the database is unreachable for the stale-if-error window after that.
 */
type Entry = { key: AuthenticatedKey | null; until: number; fetchedAt: number; refused?: 'unknown' | 'revoked' | 'expired' };

/**
 * Key gate: an in-process cache keyed by the key's hash; on a miss, format and checksum (no
 * I/O), then Postgres. Unknown keys are cached negatively for a few seconds, so a
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
  /**
   * Lookups in flight, by hash: a burst of first requests with one new key waits on one query.
   * One query each queued behind the pool until most outlived the timeout (a 503 each).
   */
  private readonly inflight = new Map<string, Promise<Entry>>();
  private readonly seen = new Set<string>();
  private readonly flushTimer: NodeJS.Timeout;

  constructor(
    private readonly options: {
      db: Database;
      prefix: string;
      cacheTtlMs: number;
      negativeCacheTtlMs: number;
      lastUsedFlushMs: number;
      /** How long one lookup may take before the database counts as down. */
      databaseTimeoutMs?: number;
      /** How long past its TTL a verified key is still served while the database is down. */
      staleIfErrorMs?: number;
      /** Told about every database call's outcome (the outage watch). */
      onDatabaseResult?: (error: unknown | null) => void;
      /** Told about every cache lookup (metrics). */
      onLookup?: (hit: boolean) => void;
      /** The time, in ms: expiry and grace periods are judged against it. */
      now?: () => number;
    },
  ) {
    // The LRU keeps entries for the whole stale window; freshness is judged in `authenticate`.
    this.cache = new LRUCache<string, Entry>({ max: 50_000, ttl: Math.max(options.cacheTtlMs + (options.staleIfErrorMs ?? 0), 1), ttlAutopurge: false });
    this.flushTimer = setInterval(() => void this.flushLastUsed().catch(() => undefined), options.lastUsedFlushMs);
    this.flushTimer.unref();
  }

  /**
   * `guard` runs wherever the answer is not already known to be a valid key: before a database
   * lookup and before a failure is returned. The brute-force block lives there, so a known key
   * pays nothing for it and every guess is checked. A key used from where its restrictions do not
   * allow (`source`) fails like a guess — the guard runs, nothing of the key is touched (not even
   * last_used_at) — so a stolen key tried from elsewhere learns as little as a made-up one.
   */
  async authenticate(candidate: string | undefined, guard: () => Promise<void> = async () => {}, source?: RequestSource): Promise<AuthResult> {
    if (candidate === undefined || candidate === '') return { ok: false, reason: 'missing' };
    if (candidate.length > MAX_KEY_LENGTH) return guard().then(() => ({ ok: false, reason: 'malformed' }));
    // The cache first: a key verified here hashes to an entry, and only well-formed keys were
    // ever looked up, so its shape and checksum need no second look.
    const hash = hashKey(candidate);
    const now = this.now();
    const cached = this.options.cacheTtlMs > 0 ? this.cache.get(hash) : undefined;
    const ttl = cached?.key ? this.options.cacheTtlMs : this.options.negativeCacheTtlMs;
    let entry = cached && now - cached.fetchedAt < ttl ? cached : undefined;
    if (!entry && !parseKey(candidate, this.options.prefix).ok) return guard().then(() => ({ ok: false, reason: 'malformed' }));
    this.options.onLookup?.(!!entry);
    const guarded = !entry?.key;
    if (guarded) await guard();
    if (!entry) entry = await this.lookupOnce(hash, now, cached);
    if (!entry.key) return { ok: false, reason: entry.refused ?? 'unknown' };
    // A cached key may have expired, or its old secret's grace period ended, since it was cached.
    if (entry.until <= now) {
      this.cache.delete(hash);
      return { ok: false, reason: 'expired' };
    }
    const { restrictions } = entry.key;
    if (restrictions && !(source && admits(restrictions, source.ip, source.origin))) {
      if (!guarded) await guard();
      return { ok: false, reason: 'restricted' };
    }
    this.seen.add(entry.key.id);
    return { ok: true, key: entry.key };
  }

  private lookupOnce(hash: string, now: number, stale: Entry | undefined): Promise<Entry> {
    let pending = this.inflight.get(hash);
    if (!pending) {
      pending = this.lookup(hash, now, stale).finally(() => this.inflight.delete(hash));
      this.inflight.set(hash, pending);
    }
    return pending;
  }

  /**
   * Asks the database, within its timeout. If it cannot answer, a key verified here within the
   * stale-if-error window keeps working (revocations still arrive over pub/sub); anything else
   * is a 503, never a 500 and never a wait.
   */
  private async lookup(hash: string, now: number, stale: Entry | undefined): Promise<Entry> {
    let found: Awaited<ReturnType<typeof findKeyByHash>>;
    try {
      const timeoutMs = this.options.databaseTimeoutMs ?? 2000;
      found = await withTimeout(findKeyByHash(this.options.db, hash), timeoutMs, 'the API key lookup');
      this.options.onDatabaseResult?.(null);
    } catch (error) {
      this.options.onDatabaseResult?.(error);
      if (stale?.key && now - stale.fetchedAt < this.options.cacheTtlMs + (this.options.staleIfErrorMs ?? 0)) return stale;
      throw serviceUnavailable('The API key store is temporarily unavailable; try again shortly.', 5);
    }
    const state = found ? stateOf(found.key, hash, now) : 'unknown';
    const entry: Entry = state === 'active' ? { key: toAuthenticatedKey(found!), until: validUntil(found!.key, hash), fetchedAt: now } : { key: null, until: Infinity, fetchedAt: now, refused: state };
    if (this.options.cacheTtlMs > 0) {
      this.cache.set(hash, entry, entry.key ? undefined : { ttl: Math.max(this.options.negativeCacheTtlMs, 1) });
    }
    return entry;
  }

  /**
   * Drops every cached entry of a key (revoked, rotated, changed) — or of every key under a
   * consumer or a plan, when `id` is one (their budgets changed) — and all negative entries.
   */
  invalidate(id: string): void {
    for (const [hash, entry] of this.cache.entries()) {
      if (!entry.key || entry.key.id === id || entry.key.owner === id || entry.key.planId === id) this.cache.delete(hash);
    }
  }

  private now(): number {
    return this.options.now?.() ?? Date.now();
  }

  /** Writes last_used_at; if the database is down the ids are kept for the next flush. */
  async flushLastUsed(at = new Date()): Promise<void> {
    if (this.seen.size === 0) return;
    const ids = [...this.seen];
    this.seen.clear();
    try {
      await withTimeout(touchLastUsed(this.options.db, ids, at), this.options.databaseTimeoutMs ?? 2000, 'recording last_used_at');
      this.options.onDatabaseResult?.(null);
    } catch (error) {
      for (const id of ids) this.seen.add(id);
      this.options.onDatabaseResult?.(error);
      throw error;
    }
  }

  async close(): Promise<void> {
    clearInterval(this.flushTimer);
    await this.flushLastUsed();
  }
}
