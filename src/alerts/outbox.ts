import { randomBytes } from 'node:crypto';
import { and, desc, eq, lt, or, sql } from 'drizzle-orm';
import type { Database } from '../db/client';
import { webhookEvents } from '../db/schema';
import { fail, type Result } from '../keys/limits-input';

export type AlertEvent = {
  /** What makes it once: type, subject, window instance, threshold. A second insert is a no-op. */
  dedupeKey: string;
  type: 'usage.threshold' | 'key.expiring' | 'key.rotation_due';
  data: Record<string, unknown>;
  /** Recorded but never sent: a tighter warning of the same kind went instead. */
  superseded?: boolean;
};

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
    if (!events.length) return;
    const createdAt = new Date(this.now());
    await this.db
      .insert(webhookEvents)
      .values(events.map((e) => ({
        id: messageId(),
        dedupeKey: e.dedupeKey,
        type: e.type,
        payload: { type: e.type, timestamp: createdAt.toISOString(), data: e.data },
        createdAt,
        nextAttemptAt: createdAt,
        status: e.superseded ? 'superseded' : 'pending',
      })))
      .onConflictDoNothing({ target: webhookEvents.dedupeKey });
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
      .where(eq(webhookEvents.id, id));
  }

  /**
   * Forgets settled events (delivered, failed, superseded) recorded before `before`, a batch at a
   * time. Their dedupe keys go with them: only a rotation still not done is reminded of again.
   */
  async prune(before: Date): Promise<number> {
    let deleted = 0;
    for (;;) {
      const rows = await this.db.execute(sql`
        DELETE FROM tollgate.webhook_events WHERE id IN (
          SELECT id FROM tollgate.webhook_events WHERE status <> 'pending' AND created_at < ${before.toISOString()}::timestamptz LIMIT 1000)`);
      const count = (rows as { count?: number; affectedRows?: number }).count ?? (rows as { affectedRows?: number }).affectedRows ?? 0;
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
      if (!id || Number.isNaN(Number(at))) return fail('BAD_USER_INPUT', '"after" is not a cursor this list gave.', 'after');
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
