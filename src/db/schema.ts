import { sql } from 'drizzle-orm';
import { bigserial, index, integer, jsonb, pgSchema, text, timestamp, uniqueIndex, uuid } from 'drizzle-orm/pg-core';

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
    expiresAt: timestamp('expires_at', { withTimezone: true }),
    revokedAt: timestamp('revoked_at', { withTimezone: true }),
    // Millisecond precision: the list cursor carries a JS Date, which has no microseconds.
    createdAt: timestamp('created_at', { withTimezone: true, precision: 3 }).notNull().defaultNow(),
    lastUsedAt: timestamp('last_used_at', { withTimezone: true }),
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
