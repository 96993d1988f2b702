import { sql } from 'drizzle-orm';
import { bigint, bigserial, index, integer, primaryKey, jsonb, pgSchema, text, timestamp, uniqueIndex, uuid } from 'drizzle-orm/pg-core';

/**
 * Tollgate's own tables live in their own Postgres schema, so they never collide with the
 * tables of the API they protect (the weather example keeps its tables in src/weather/tables.ts).
 */
export const tollgateSchema = pgSchema('tollgate');

/** A per-key replacement for a field's schema limit (`Query.forecast` → 5 per 60 s). */
export type LimitOverride = { coordinate: string; limit: number; duration: number };
/** One window of an operation budget: points per `duration` seconds. */
export type BudgetWindow = { points: number; duration: number };
/** A calendar quota: points per UTC day or month, reset at 00:00 UTC of the next day or the 1st. */
export type Quota = { points: number; period: 'DAY' | 'MONTH' };

/** A named set of limits sold to consumers: operation-budget windows, field limits, the most one operation may cost. */
export const plans = tollgateSchema.table('plans', {
  id: uuid('id').primaryKey().default(sql`gen_random_uuid()`),
  name: text('name').notNull(),
  budgets: jsonb('budgets').$type<BudgetWindow[]>().notNull().default(sql`'[]'::jsonb`),
  quotas: jsonb('quotas').$type<Quota[]>().notNull().default(sql`'[]'::jsonb`),
  limits: jsonb('limits').$type<LimitOverride[]>().notNull().default(sql`'[]'::jsonb`),
  maxOperationCost: integer('max_operation_cost'),
  createdAt: timestamp('created_at', { withTimezone: true, precision: 3 }).notNull().defaultNow(),
});

/**
 * A customer or an app: its keys share its budgets. Its own budgets and limits win over its
 * plan's; the server's defaults apply where neither says.
 */
export const consumers = tollgateSchema.table(
  'consumers',
  {
    id: uuid('id').primaryKey().default(sql`gen_random_uuid()`),
    name: text('name').notNull(),
    // The owner's own customer id.
    externalId: text('external_id'),
    planId: uuid('plan_id').references(() => plans.id),
    budgets: jsonb('budgets').$type<BudgetWindow[]>().notNull().default(sql`'[]'::jsonb`),
    quotas: jsonb('quotas').$type<Quota[]>().notNull().default(sql`'[]'::jsonb`),
    limits: jsonb('limits').$type<LimitOverride[]>().notNull().default(sql`'[]'::jsonb`),
    createdAt: timestamp('created_at', { withTimezone: true, precision: 3 }).notNull().defaultNow(),
  },
  (t) => [uniqueIndex('consumers_external_id_key').on(t.externalId), index('consumers_created_at_idx').on(t.createdAt, t.id), index('consumers_plan_idx').on(t.planId)],
);

export const apiKeys = tollgateSchema.table(
  'api_keys',
  {
    id: uuid('id').primaryKey().default(sql`gen_random_uuid()`),
    name: text('name').notNull(),
    // Non-secret display prefix, e.g. "tg_3kQ9": enough to recognise a key in a list.
    start: text('start').notNull(),
    // SHA-256 (hex) of the whole key. The plaintext is never stored.
    hash: text('hash').notNull(),
    // After a rotation the previous secret keeps working until previous_hash_expires_at.
    previousHash: text('previous_hash'),
    previousHashExpiresAt: timestamp('previous_hash_expires_at', { withTimezone: true }),
    scopes: text('scopes').array().notNull().default(sql`'{}'::text[]`),
    limits: jsonb('limits').$type<LimitOverride[]>().notNull().default(sql`'[]'::jsonb`),
    budgetPoints: integer('budget_points'),
    budgetDuration: integer('budget_duration'),
    // More operation-budget windows beside `budget` (which stays the first, as it always was).
    budgets: jsonb('budgets').$type<BudgetWindow[]>().notNull().default(sql`'[]'::jsonb`),
    // Under a consumer, the key spends the consumer's budgets; its own budget and limits cap it.
    consumerId: uuid('consumer_id').references(() => consumers.id),
    // Where the key may be used from: client addresses (CIDR ranges, canonical) and browser
    // origins (exact). Empty: anywhere. A request from elsewhere is refused like an unknown key.
    allowedIps: text('allowed_ips').array().notNull().default(sql`'{}'::text[]`),
    allowedOrigins: text('allowed_origins').array().notNull().default(sql`'{}'::text[]`),
    expiresAt: timestamp('expires_at', { withTimezone: true }),
    revokedAt: timestamp('revoked_at', { withTimezone: true }),
    // Millisecond precision: the list cursor carries a JS Date, which has no microseconds.
    createdAt: timestamp('created_at', { withTimezone: true, precision: 3 }).notNull().defaultNow(),
    lastUsedAt: timestamp('last_used_at', { withTimezone: true }),
    // When the current secret was made (creation or the last rotation): rotation policy is judged from it.
    secretCreatedAt: timestamp('secret_created_at', { withTimezone: true, precision: 3 }).notNull().defaultNow(),
  },
  (t) => [
    uniqueIndex('api_keys_hash_key').on(t.hash),
    uniqueIndex('api_keys_previous_hash_key').on(t.previousHash),
    index('api_keys_created_at_idx').on(t.createdAt, t.id),
    index('api_keys_consumer_idx').on(t.consumerId),
  ],
);

export const auditEvents = tollgateSchema.table(
  'audit_events',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    at: timestamp('at', { withTimezone: true }).notNull().defaultNow(),
    // null when the actor is an operator at the command line (or the first-start bootstrap).
    actorKeyId: uuid('actor_key_id'),
    action: text('action').notNull(),
    targetKeyId: uuid('target_key_id'),
    // The consumer or plan a change was made to (key changes name the key in target_key_id).
    targetId: uuid('target_id'),
    details: jsonb('details').$type<Record<string, unknown>>().notNull().default(sql`'{}'::jsonb`),
  },
  (t) => [index('audit_events_target_idx').on(t.targetKeyId, t.id), index('audit_events_target_id_idx').on(t.targetId, t.id)],
);

/** A usage bucket's length: every count is written to its minute, hour and day at once (src/usage/). */
export type Granularity = 'minute' | 'hour' | 'day';

/** The consumer id of usage by a key that has no consumer. */
export const NO_CONSUMER = '00000000-0000-0000-0000-000000000000';

const usageBucket = {
  granularity: text('granularity').$type<Granularity>().notNull(),
  start: timestamp('start', { withTimezone: true }).notNull(),
  keyId: uuid('key_id').notNull(),
  // The key's consumer when the usage happened (a consumer's history is the sum of its keys'
  // while they were under it): part of the bucket, so a key moved to another consumer starts new
  // rows. NO_CONSUMER for a key without one (a primary key cannot hold a null).
  consumerId: uuid('consumer_id').notNull().default(NO_CONSUMER),
};

/** Operations of one key in one bucket. No foreign keys: history outlives what it describes. */
export const usage = tollgateSchema.table(
  'usage',
  {
    ...usageBucket,
    operations: bigint('operations', { mode: 'number' }).notNull().default(0),
    refused: bigint('refused', { mode: 'number' }).notNull().default(0),
    points: bigint('points', { mode: 'number' }).notNull().default(0),
    refunded: bigint('refunded', { mode: 'number' }).notNull().default(0),
    errors: bigint('errors', { mode: 'number' }).notNull().default(0),
  },
  (t) => [primaryKey({ columns: [t.keyId, t.granularity, t.start, t.consumerId] }), index('usage_consumer_idx').on(t.consumerId, t.granularity, t.start), index('usage_bucket_idx').on(t.granularity, t.start)],
);

/** Per field coordinate: resolutions, points, refusals. */
export const usageFields = tollgateSchema.table(
  'usage_fields',
  {
    ...usageBucket,
    coordinate: text('coordinate').notNull(),
    calls: bigint('calls', { mode: 'number' }).notNull().default(0),
    points: bigint('points', { mode: 'number' }).notNull().default(0),
    refused: bigint('refused', { mode: 'number' }).notNull().default(0),
  },
  (t) => [primaryKey({ columns: [t.keyId, t.granularity, t.start, t.consumerId, t.coordinate] }), index('usage_fields_consumer_idx').on(t.consumerId, t.granularity, t.start), index('usage_fields_bucket_idx').on(t.granularity, t.start)],
);

/** Refusals by gate (and coordinate, '' for the whole operation). */
export const usageRefusals = tollgateSchema.table(
  'usage_refusals',
  {
    ...usageBucket,
    gate: text('gate').notNull(),
    coordinate: text('coordinate').notNull().default(''),
    count: bigint('count', { mode: 'number' }).notNull().default(0),
  },
  (t) => [primaryKey({ columns: [t.keyId, t.granularity, t.start, t.consumerId, t.gate, t.coordinate] }), index('usage_refusals_consumer_idx').on(t.consumerId, t.granularity, t.start), index('usage_refusals_bucket_idx').on(t.granularity, t.start)],
);

/**
 * Usage flushes that committed, by id: a flush whose answer never came (a frozen connection, a
 * timeout) is sent again with the same id, and adds nothing if the first one did commit.
 */
export const usageFlushes = tollgateSchema.table('usage_flushes', {
  id: text('id').primaryKey(),
  at: timestamp('at', { withTimezone: true, precision: 3 }).notNull().defaultNow(),
});

/**
 * The webhook outbox: an event is a row before it is a delivery, so it survives a restart. The
 * unique `dedupe_key` (type, subject, window instance, threshold) makes "once" a database fact,
 * whatever the number of instances.
 */
export const webhookEvents = tollgateSchema.table(
  'webhook_events',
  {
    // The Standard Webhooks message id (webhook-id): the receiver's idempotency key.
    id: text('id').primaryKey(),
    dedupeKey: text('dedupe_key').notNull(),
    type: text('type').notNull(),
    payload: jsonb('payload').$type<Record<string, unknown>>().notNull(),
    createdAt: timestamp('created_at', { withTimezone: true, precision: 3 }).notNull().defaultNow(),
    // pending → delivered | failed (gave up) | superseded (a tighter warning went instead)
    status: text('status').notNull().default('pending'),
    attempts: integer('attempts').notNull().default(0),
    nextAttemptAt: timestamp('next_attempt_at', { withTimezone: true, precision: 3 }).notNull().defaultNow(),
    lastAttemptAt: timestamp('last_attempt_at', { withTimezone: true, precision: 3 }),
    lastResult: text('last_result'),
    deliveredAt: timestamp('delivered_at', { withTimezone: true, precision: 3 }),
    // Settled events are kept until then (and at least 30 days): while its window instance can
    // still recur, the row is what keeps the event once. Null: kept while its key's secret is unchanged.
    keepUntil: timestamp('keep_until', { withTimezone: true, precision: 3 }),
  },
  (t) => [uniqueIndex('webhook_events_dedupe_key').on(t.dedupeKey), index('webhook_events_due_idx').on(t.status, t.nextAttemptAt), index('webhook_events_created_idx').on(t.createdAt, t.id)],
);
