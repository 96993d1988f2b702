import { randomBytes } from 'node:crypto';
import { and, desc, eq, lt, or, sql } from 'drizzle-orm';
import { rowsAffected, type Database } from '../db/client';
import { webhookEvents } from '../db/schema';
import { fail, type Result } from '../keys/limits-input';

export type AlertEvent = {
  /** What makes it once: type, subject, window instance, threshold. A second insert is a no-op. */
  dedupeKey: string;
  type: 'usage.threshold' | 'key.expiring' | 'key.rotation_due';
  data: Record<string, unknown>;
  /** Recorded but never sent: a tighter warning of the same kind went instead. */
  superseded?: boolean;
  /**
   * Until when the event must be remembered to stay once (its window's end, its key's expiry);
   * null: while its key keeps the secret it is about. Settled events go after this, and 30 days.
   */
  keepUntil: Date | null;
};

/** Rows per insert: well inside Postgres's 65 535 parameters. */
const INSERT_CHUNK = 500;

export type WebhookDeliveryRow = typeof webhookEvents.$inferSelect;

/** A Standard Webhooks message id: unique, and the receiver's idempotency key. */
const messageId = () => `msg_${randomBytes(16).toString('base64url')}`;

/**
 * The webhook outbox in Postgres: an event is a row before it is a delivery, so it survives a
 * restart; the unique dedupe key makes "once" a database fact across instances and restarts.
 */
export class Outbox {
  constructor(private readonly db: Database, private readonly now: () => number = Date.now) {}

  /** Records events; ones already recorded (by dedupe key) are left as they are. */
  async enqueue(events: readonly AlertEvent[]): Promise<void> {
    const createdAt = new Date(this.now());
    for (let i = 0; i < events.length; i += INSERT_CHUNK) {
      await this.db
        .insert(webhookEvents)
        .values(events.slice(i, i + INSERT_CHUNK).map((e) => ({
          id: messageId(),
          dedupeKey: e.dedupeKey,
          type: e.type,
          payload: { type: e.type, timestamp: createdAt.toISOString(), data: e.data },
          createdAt,
          nextAttemptAt: createdAt,
          status: e.superseded ? 'superseded' : 'pending',
          keepUntil: e.keepUntil,
        })))
        .onConflictDoNothing({ target: webhookEvents.dedupeKey });
    }
  }

  /**
   * Claims up to `limit` due events for one attempt: each is leased for `leaseMs` (another
   * instance takes it over if this one dies mid-delivery: at least once, never lost).
   */
  async claim(limit: number, leaseMs: number): Promise<WebhookDeliveryRow[]> {
    const now = new Date(this.now());
    const due = this.db
      .select({ id: webhookEvents.id })
      .from(webhookEvents)
      .where(and(eq(webhookEvents.status, 'pending'), sql`${webhookEvents.nextAttemptAt} <= ${now.toISOString()}::timestamptz`))
      .orderBy(webhookEvents.nextAttemptAt)
      .limit(limit)
      .for('update', { skipLocked: true });
    return this.db
      .update(webhookEvents)
      .set({ attempts: sql`${webhookEvents.attempts} + 1`, lastAttemptAt: now, nextAttemptAt: new Date(now.getTime() + leaseMs) })
      .where(sql`${webhookEvents.id} IN (${due})`)
      .returning();
  }

  /** The result of one attempt: delivered, retried at `retryAt`, or given up (retryAt null). */
  async settle(id: string, result: string, outcome: { delivered: true } | { delivered: false; retryAt: Date | null }): Promise<void> {
    const now = new Date(this.now());
    await this.db
      .update(webhookEvents)
      .set(outcome.delivered
        ? { status: 'delivered', deliveredAt: now, lastResult: result }
        : outcome.retryAt
          ? { lastResult: result, nextAttemptAt: outcome.retryAt }
          : { status: 'failed', lastResult: result })
      // Only while pending: a slow attempt that gives up never undoes another instance's delivery.
      .where(and(eq(webhookEvents.id, id), eq(webhookEvents.status, 'pending')));
  }

  /**
   * Forgets settled events (delivered, failed, superseded) recorded before `before` whose dedupe
   * key can no longer matter: past `keep_until`, or — a rotation reminder — once its key has a
   * new secret or is revoked. A batch at a time.
   */
  async prune(before: Date): Promise<number> {
    let deleted = 0;
    const now = new Date(this.now()).toISOString();
    for (;;) {
      const rows = await this.db.execute(sql`
        DELETE FROM tollgate.webhook_events WHERE id IN (
          SELECT e.id FROM tollgate.webhook_events e
          WHERE e.status <> 'pending' AND e.created_at < ${before.toISOString()}::timestamptz
            AND (e.keep_until < ${now}::timestamptz OR (e.keep_until IS NULL AND NOT EXISTS (
              SELECT 1 FROM tollgate.api_keys k WHERE k.id::text = e.payload->'data'->>'keyId' AND k.revoked_at IS NULL
                AND k.secret_created_at = (e.payload->'data'->>'secretCreatedAt')::timestamptz)))
          LIMIT 1000)`);
      const count = rowsAffected(rows);
      deleted += count;
      if (count < 1000) return deleted;
    }
  }

  /** Newest first, for admins: `webhookDeliveries`. */
  async list(args: { first: number; after?: string; status?: string }): Promise<Result<{ nodes: (WebhookDeliveryRow & { cursor: string })[]; hasNextPage: boolean }>> {
    if (!Number.isInteger(args.first) || args.first < 1 || args.first > 100) return fail('BAD_USER_INPUT', '"first" must be from 1 to 100.', 'first');
    let cursor: { at: Date; id: string } | undefined;
    if (args.after) {
      const [at, id] = Buffer.from(args.after, 'base64url').toString().split('|');
      if (!id || !/^\d{1,15}$/.test(at)) return fail('BAD_USER_INPUT', '"after" is not a cursor this list gave.', 'after');
      cursor = { at: new Date(Number(at)), id };
    }
    const rows = await this.db
      .select()
      .from(webhookEvents)
      .where(and(
        args.status ? eq(webhookEvents.status, args.status) : sql`${webhookEvents.status} <> 'superseded'`,
        cursor ? or(lt(webhookEvents.createdAt, cursor.at), and(eq(webhookEvents.createdAt, cursor.at), lt(webhookEvents.id, cursor.id))) : undefined,
      ))
      .orderBy(desc(webhookEvents.createdAt), desc(webhookEvents.id))
      .limit(args.first + 1);
    const nodes = rows.slice(0, args.first).map((row) => ({ ...row, cursor: Buffer.from(`${row.createdAt.getTime()}|${row.id}`).toString('base64url') }));
    return { ok: true, value: { nodes, hasNextPage: rows.length > args.first } };
  }
}
