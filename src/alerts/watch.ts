import { and, gt, isNotNull, isNull, lte, sql } from 'drizzle-orm';
import type { Logger } from 'pino';
import type { Database } from '../db/client';
import { apiKeys } from '../db/schema';
import type { CounterState } from '../counting/take';
import type { AuthenticatedKey, KeyWindow } from '../keys/types';
import type { AlertEvent, Outbox } from './outbox';
import { errorFields } from '../log-error';

export type AlertWatchOptions = {
  outbox: Outbox;
  db: Database;
  logger: Logger;
  /** Percents of a window at which `usage.threshold` fires, ascending (ALERT_THRESHOLDS). */
  thresholds: readonly number[];
  /** Days before a key's expiry at which `key.expiring` fires, descending (ALERT_KEY_EXPIRY_DAYS). */
  keyExpiryDays: readonly number[];
  /** KEY_ROTATION_DAYS: a key whose secret is older is due for rotation. */
  rotationDays?: number;
  now?: () => number;
  /** How often keys are checked for expiry and rotation (besides start-up and after a key changes). */
  keyCheckMs?: number;
};

const DAY_MS = 86_400_000;
/** Keys one check reminds of rotation at most; the next check (a minute later) takes the next ones. */
const KEYS_PER_CHECK = 1_000;
const ROTATION_PREFIX = 'key.rotation_due|';
const rotationDedupeKey = (keyId: string, secretCreatedAtMs: number) => `${ROTATION_PREFIX}${keyId}|${secretCreatedAtMs}`;
/** Window instances this instance remembers having alerted (the database decides "once"; this only saves inserts). */
const MAX_NOTED = 10_000;

/**
 * Decides which alerts are due and records them in the outbox (delivery.ts sends them):
 *  - usage.threshold, from where a take left a consumer's (or consumer-less key's) window of an
 *    hour or longer, or a quota — once per threshold per window instance (its bucket);
 *  - key.expiring and key.rotation_due, from the keys table at start-up, periodically, and soon
 *    after any key changes.
 * "Once" is the outbox's unique dedupe key, so it holds across instances and restarts.
 */
export class AlertWatch {
  private readonly noted = new Map<string, number>();
  private pending: AlertEvent[] = [];
  private flushing: Promise<void> | null = null;
  private timer?: NodeJS.Timeout;
  private soon?: NodeJS.Timeout;
  private retry?: NodeJS.Timeout;
  private checking: Promise<void> | null = null;

  constructor(private readonly options: AlertWatchOptions) {}

  private now() {
    return (this.options.now ?? Date.now)();
  }

  start(): void {
    this.timer = setInterval(() => void this.checkKeys(), this.options.keyCheckMs ?? 60_000);
    this.timer.unref();
    void this.checkKeys();
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    clearTimeout(this.soon);
    clearTimeout(this.retry);
    await this.checking;
    await this.flushing;
    await this.flush();
  }

  /**
   * Once an operation is done (after its refund), or refused: checks the owner's long windows and
   * quotas against the thresholds. A window that refused is at 100 % — the customer hit the wall —
   * even when what it holds is a little less (the refused take added nothing). No I/O here.
   */
  standing(key: AuthenticatedKey, windows: readonly KeyWindow[], states: readonly (CounterState | null | undefined)[], refusedAt?: number): void {
    const { thresholds } = this.options;
    for (let i = 0; i < windows.length; i++) {
      const window = windows[i];
      const state = states[i];
      if (!state || window.cap || (!window.period && window.duration < 3600)) continue;
      const percent = i === refusedAt ? 100 : (state.used * 100) / window.limit;
      if (percent < thresholds[0]) continue;
      const subject = key.consumerId ? `consumer:${key.consumerId}` : `key:${key.id}`;
      const name = window.period ? `quota-${window.period.toLowerCase()}` : `${window.duration}s`;
      const instance = `${subject}|${name}|${state.bucket}`;
      const already = this.noted.get(instance) ?? 0;
      const crossed = thresholds.filter((t) => percent >= t && t > already);
      if (!crossed.length) continue;
      if (this.noted.size >= MAX_NOTED) this.noted.clear();
      this.noted.set(instance, crossed[crossed.length - 1]);
      const resetAt = new Date(this.now() + state.msLeft);
      // Remembered while the window instance can recur (a sliding window's bucket, one more length).
      const keepUntil = new Date(resetAt.getTime() + (window.period ? 0 : window.duration * 1000) + DAY_MS);
      for (const threshold of crossed) {
        this.pending.push({
          keepUntil,
          dedupeKey: `usage.threshold|${instance}|${threshold}`,
          type: 'usage.threshold',
          data: {
            ...(key.consumerId ? { consumerId: key.consumerId } : { keyId: key.id }),
            limit: window.limit,
            ...(window.period ? { period: window.period } : { duration: window.duration }),
            used: state.used,
            threshold,
            resetAt: resetAt.toISOString(),
          },
        });
      }
      this.scheduleFlush();
    }
  }

  /** A key changed (created, updated, rotated): check expiry and rotation within a second. */
  keyChanged(): void {
    if (this.soon) return;
    this.soon = setTimeout(() => {
      this.soon = undefined;
      void this.checkKeys();
    }, 500);
    this.soon.unref();
  }

  /** Expiry warnings and rotation reminders for every live key that is due one. Never throws. */
  checkKeys(): Promise<void> {
    this.checking ??= this.findKeyAlerts()
      .then((events) => this.options.outbox.enqueue(events))
      .catch((error: Error) => this.options.logger.warn({ err: errorFields(error) }, 'could not check keys for alerts'))
      .finally(() => (this.checking = null));
    return this.checking;
  }

  private async findKeyAlerts(): Promise<AlertEvent[]> {
    const { db, keyExpiryDays, rotationDays } = this.options;
    const now = this.now();
    const events: AlertEvent[] = [];
    if (keyExpiryDays.length) {
      const horizon = new Date(now + keyExpiryDays[0] * DAY_MS);
      const expiring = await db
        .select({ id: apiKeys.id, expiresAt: apiKeys.expiresAt })
        .from(apiKeys)
        .where(and(isNull(apiKeys.revokedAt), isNotNull(apiKeys.expiresAt), gt(apiKeys.expiresAt, new Date(now)), lte(apiKeys.expiresAt, horizon)));
      for (const key of expiring) {
        const left = key.expiresAt!.getTime() - now;
        const due = keyExpiryDays.filter((days) => left <= days * DAY_MS); // descending: the tightest last
        due.forEach((days, i) => events.push({
          // The expiry is part of the instance: a key given a new expiry is warned again.
          dedupeKey: `key.expiring|${key.id}|${key.expiresAt!.getTime()}|${days}`,
          type: 'key.expiring',
          data: { keyId: key.id, expiresAt: key.expiresAt!.toISOString(), days },
          // Only the tightest warning goes out; wider ones it passed are recorded as done.
          superseded: i < due.length - 1,
          keepUntil: key.expiresAt,
        }));
      }
    }
    if (rotationDays) {
      const due = await db
        .select({ id: apiKeys.id, secretCreatedAt: apiKeys.secretCreatedAt })
        .from(apiKeys)
        .where(and(
          isNull(apiKeys.revokedAt),
          sql`(${apiKeys.expiresAt} IS NULL OR ${apiKeys.expiresAt} > ${new Date(now).toISOString()}::timestamptz)`,
          lte(apiKeys.secretCreatedAt, new Date(now - rotationDays * DAY_MS)),
          // Not those already reminded: on a deployment of many old keys, a check is a few rows, not all of them.
          sql`NOT EXISTS (SELECT 1 FROM tollgate.webhook_events e WHERE e.dedupe_key = ${ROTATION_PREFIX}::text || ${apiKeys.id}::text || '|' || ((extract(epoch FROM ${apiKeys.secretCreatedAt}) * 1000)::bigint)::text)`,
        ))
        .limit(KEYS_PER_CHECK);
      for (const key of due) {
        const dueAt = new Date(key.secretCreatedAt.getTime() + rotationDays * DAY_MS).toISOString();
        events.push({ dedupeKey: rotationDedupeKey(key.id, key.secretCreatedAt.getTime()), type: 'key.rotation_due', data: { keyId: key.id, secretCreatedAt: key.secretCreatedAt.toISOString(), rotationDueAt: dueAt, rotationDays }, keepUntil: null });
      }
    }
    return events;
  }

  private scheduleFlush() {
    if (this.flushing) return;
    // Off the request's path: recorded on the next turn, in one insert for everything crossed meanwhile.
    this.flushing = new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.flush()).finally(() => (this.flushing = null));
  }

  /** Records pending usage alerts. Never throws (a failed insert is kept and tried again a minute later). */
  async flush(): Promise<void> {
    const events = this.pending;
    this.pending = [];
    if (!events.length) return;
    await this.options.outbox.enqueue(events).catch((error: Error) => {
      // Kept for the next flush (a minute from now, or the next crossing), up to a bound.
      this.pending = [...events, ...this.pending].slice(0, MAX_NOTED);
      this.retry ??= setTimeout(() => {
        this.retry = undefined;
        this.scheduleFlush();
      }, 60_000);
      this.retry.unref();
      this.options.logger.warn({ err: errorFields(error), events: events.length }, 'could not record usage alerts; retrying in a minute');
    });
  }
}
