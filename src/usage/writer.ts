import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import type { Logger } from 'pino';
import { rowsAffected, type Database } from '../db/client';
import { NO_CONSUMER, type Granularity } from '../db/schema';
import { withTimeout } from '../timeout';
import type { KeyMinute, UsageCounter } from './counter';
import { errorFields } from '../log-error';

export type UsageWriterOptions = {
  db: Database;
  counter: UsageCounter;
  logger: Logger;
  flushMs: number;
  /** How long each granularity's buckets are kept. */
  retentionMs: Record<Granularity, number>;
  now?: () => number;
  /** The most one statement may take before it counts as failed (it is sent again, with the same id). */
  timeoutMs: number;
  /** Told after each flush: how many key-minutes were written, or that the write failed. */
  onFlush?: (rows: number, failed: boolean) => void;
};

/** Key-minutes kept for a later write while Postgres cannot take them (about 1 kB each at most). */
const MAX_PENDING = 100_000;
/** Key-minutes in one statement at most: a flush after an outage is several short statements, not one long one. */
const MAX_BATCH = 5_000;
/** Rows one pruning statement deletes: short statements, so pruning never holds a request up. */
const PRUNE_BATCH = 2_000;
const PRUNE_EVERY_MS = 10 * 60_000;
/** Committed flush ids are remembered this long: far longer than any batch waits for its retry. */
const FLUSH_IDS_KEPT_MS = 7 * 86_400_000;

/** Key-minutes written by one statement, under an id that makes sending it twice harmless. */
type Batch = { id: string; rows: KeyMinute[]; rejected: number };
/** Times Postgres may refuse a batch's data (not its connection) before it is given up. */
const MAX_REJECTIONS = 3;

/**
 * Postgres answered and refused the statement for what it holds (a SQLSTATE outside connection
 * trouble, resources, rollbacks like deadlocks, and cancellations), as opposed to being away.
 */
function rejectedByPostgres(error: unknown): boolean {
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) && !/^(08|40|53|57|58)/.test(code);
}

/**
 * Writes counted usage to Postgres: every `flushMs`, one statement per batch that adds each
 * key-minute to its minute, its hour and its day (upserts that add, so any number of instances
 * write the same bucket without losing a count; no roll-up job can miss a late row), and, every
 * ten minutes and beside the flushes, prunes each granularity past its retention in small batches.
 *
 * Exactly once: a batch keeps its id until a write of it is known to have committed. A write
 * that fails or whose answer does not come in time (a frozen connection) is sent again with the
 * same id, and the statement adds nothing when that id has already committed.
 */
export class UsageWriter {
  private timer?: NodeJS.Timeout;
  private pruneTimer?: NodeJS.Timeout;
  /** Writes run one after another; `queued` are waiting their turn. */
  private flushing: Promise<void> = Promise.resolve();
  private queued = 0;
  private pruning: Promise<unknown> | null = null;
  private closed = false;
  /** Batches not yet known to be written, oldest first. */
  private waiting: Batch[] = [];

  constructor(private readonly options: UsageWriterOptions) {}

  start(): void {
    this.timer = setInterval(() => {
      if (this.queued === 0) void this.flush(); // a slow Postgres does not pile up timed flushes
    }, this.options.flushMs);
    this.timer.unref();
    // Pruning runs beside the flushes, never in their way: a long prune delays no count.
    this.pruneTimer = setInterval(() => {
      this.pruning ??= this.prune()
        .catch((error: Error) => this.options.logger.warn({ err: errorFields(error) }, 'could not prune usage history'))
        .finally(() => (this.pruning = null));
    }, PRUNE_EVERY_MS);
    this.pruneTimer.unref();
  }

  /**
   * Writes what is counted now: when it resolves, everything counted before the call has been
   * written (or kept for the next write, if Postgres failed) — a flush already under way may have
   * drained before it, so this one follows it. Never throws.
   */
  flush(): Promise<void> {
    this.queued++;
    this.flushing = this.flushing
      .then(() => {
        this.queued--;
        return this.write();
      })
      // write() handles Postgres's failures itself; anything else must not stop every later flush.
      .catch((error: Error) => this.options.logger.error({ err: errorFields(error) }, 'usage flush failed'));
    return this.flushing;
  }

  /** A clean stop: the last counts are written before the database closes (each write bounded by `timeoutMs`). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    clearInterval(this.pruneTimer);
    await this.pruning; // stops after its current batch
    await this.flush();
  }

  /** Key-minutes counted but not yet known to be written. */
  get pending(): number {
    return this.waiting.reduce((n, b) => n + b.rows.length, 0);
  }

  private async write(): Promise<void> {
    const { counter, logger } = this.options;
    const drained = counter.drain();
    for (let i = 0; i < drained.length; i += MAX_BATCH) this.waiting.push({ id: randomUUID(), rows: drained.slice(i, i + MAX_BATCH), rejected: 0 });
    this.dropOldestPastBound();
    while (this.waiting.length) {
      const batch = this.waiting[0];
      try {
        await withTimeout(this.options.db.execute(upsertStatement(batch)), this.options.timeoutMs, 'usage write');
        this.waiting.shift();
        this.options.onFlush?.(batch.rows.length, false);
      } catch (error) {
        this.options.onFlush?.(batch.rows.length, true);
        if (rejectedByPostgres(error) && ++batch.rejected >= MAX_REJECTIONS) {
          // Postgres answered, and refused this data itself: retrying cannot help, and must not hold up the rest.
          this.waiting.shift();
          logger.error({ err: errorFields(error), rows: batch.rows.length }, 'usage history lost: Postgres refused a batch three times');
          continue;
        }
        logger.warn({ err: errorFields(error), rows: this.pending }, 'could not write usage; keeping it for the next flush');
        break;
      }
    }
  }

  /** While Postgres is away the batches wait in memory, up to MAX_PENDING key-minutes; past that the oldest go. */
  private dropOldestPastBound() {
    let dropped = 0;
    while (this.waiting.length > 1 && this.pending > MAX_PENDING) dropped += this.waiting.shift()!.rows.length;
    if (dropped) this.options.logger.error({ dropped, kept: this.pending }, 'usage history lost: Postgres has been unavailable too long to keep every count');
  }

  /** Deletes buckets past their retention, a small batch at a time. Returns how many rows went. */
  async prune(now = (this.options.now ?? Date.now)()): Promise<number> {
    let deleted = 0;
    await withTimeout(this.options.db.execute(sql`DELETE FROM tollgate.usage_flushes WHERE at < ${new Date(now - FLUSH_IDS_KEPT_MS).toISOString()}::timestamptz`), this.options.timeoutMs, 'usage prune');
    for (const granularity of ['minute', 'hour', 'day'] as const) {
      const before = new Date(now - this.options.retentionMs[granularity]).toISOString();
      for (const table of ['usage', 'usage_fields', 'usage_refusals']) {
        for (;;) {
          const result = await withTimeout(this.options.db.execute(sql`
            DELETE FROM tollgate.${sql.raw(table)} WHERE ctid IN (
              SELECT ctid FROM tollgate.${sql.raw(table)} WHERE granularity = ${granularity} AND start < ${before}::timestamptz LIMIT ${PRUNE_BATCH})`), this.options.timeoutMs, 'usage prune');
          const count = rowsAffected(result);
          deleted += count;
          if (count < PRUNE_BATCH || this.closed) break;
        }
      }
    }
    return deleted;
  }
}


/**
 * One statement for a batch: the rows travel as three JSON parameters (no parameter-count limit),
 * each fanned out to minute, hour and day, grouped (an upsert may touch a row once), in key order
 * (instances writing the same hot hour and day rows lock them in one order: no deadlock), and
 * added to what is there — only if the batch's id is new.
 */
function upsertStatement({ id, rows }: Batch) {
  const c = (consumerId: string | null) => consumerId ?? NO_CONSUMER;
  const operations = rows.map((r) => ({ k: r.keyId, c: c(r.consumerId), m: r.minute, o: r.operations, r: r.refused, p: r.points, f: r.refunded, e: r.errors }));
  const fields = rows.flatMap((r) => [...r.fields].map(([d, n]) => ({ k: r.keyId, c: c(r.consumerId), m: r.minute, d, n: n.calls, p: n.points, r: n.refused })));
  const refusals = rows.flatMap((r) => [...r.refusals].map(([name, n]) => {
    const [g, d] = name.split('\u0000');
    return { k: r.keyId, c: c(r.consumerId), m: r.minute, g, d, n };
  }));
  // date_trunc in UTC whatever the session's time zone.
  const bucket = sql.raw(`g.name, date_trunc(g.name, to_timestamp(x.m * 60), 'UTC'), x.k, x.c`);
  return sql`
    WITH flush AS (INSERT INTO tollgate.usage_flushes (id) VALUES (${id}) ON CONFLICT DO NOTHING RETURNING id),
    g(name) AS (SELECT name FROM (VALUES ('minute'), ('hour'), ('day')) AS v(name) WHERE EXISTS (SELECT 1 FROM flush)),
    ops AS (
      INSERT INTO tollgate.usage AS u (granularity, start, key_id, consumer_id, operations, refused, points, refunded, errors)
      SELECT ${bucket}, sum(x.o), sum(x.r), sum(x.p), sum(x.f), sum(x.e)
      FROM jsonb_to_recordset(${JSON.stringify(operations)}::jsonb) AS x(k uuid, c uuid, m bigint, o bigint, r bigint, p bigint, f bigint, e bigint) CROSS JOIN g
      GROUP BY 1, 2, 3, 4 ORDER BY 3, 4, 1, 2
      ON CONFLICT (key_id, granularity, start, consumer_id) DO UPDATE SET
        operations = u.operations + excluded.operations, refused = u.refused + excluded.refused, points = u.points + excluded.points,
        refunded = u.refunded + excluded.refunded, errors = u.errors + excluded.errors
      RETURNING 1),
    fields AS (
      INSERT INTO tollgate.usage_fields AS u (granularity, start, key_id, consumer_id, coordinate, calls, points, refused)
      SELECT ${bucket}, x.d, sum(x.n), sum(x.p), sum(x.r)
      FROM jsonb_to_recordset(${JSON.stringify(fields)}::jsonb) AS x(k uuid, c uuid, m bigint, d text, n bigint, p bigint, r bigint) CROSS JOIN g
      GROUP BY 1, 2, 3, 4, 5 ORDER BY 3, 4, 1, 2, 5
      ON CONFLICT (key_id, granularity, start, consumer_id, coordinate) DO UPDATE SET
        calls = u.calls + excluded.calls, points = u.points + excluded.points, refused = u.refused + excluded.refused
      RETURNING 1),
    refusals AS (
      INSERT INTO tollgate.usage_refusals AS u (granularity, start, key_id, consumer_id, gate, coordinate, count)
      SELECT ${bucket}, x.g, x.d, sum(x.n)
      FROM jsonb_to_recordset(${JSON.stringify(refusals)}::jsonb) AS x(k uuid, c uuid, m bigint, g text, d text, n bigint) CROSS JOIN g
      GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 3, 4, 1, 2, 5, 6
      ON CONFLICT (key_id, granularity, start, consumer_id, gate, coordinate) DO UPDATE SET count = u.count + excluded.count
      RETURNING 1)
    SELECT (SELECT count(*) FROM ops) AS operations, (SELECT count(*) FROM fields) AS fields, (SELECT count(*) FROM refusals) AS refusals`;
}
