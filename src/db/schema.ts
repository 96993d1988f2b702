import { sql } from 'drizzle-orm';
import { bigserial, index, integer, jsonb, pgSchema, text, timestamp, uniqueIndex, uuid } from 'drizzle-orm/pg-core';

/**
 * Tollgate's own tables live in their own Postgres schema, so they never collide with the
 * tables of the API they protect (the weather example keeps its tables in src/weather/tables.ts).
 */
export const tollgateSchema = pgSchema('tollgate');

/** A per-key replacement for a field's schema limit (`Query.forecast` → 5 per 60 s). */
export type LimitOverride = { coordinate: string; limit: number; duration: number };

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
    details: jsonb('details').$type<Record<string, unknown>>().notNull().default(sql`'{}'::jsonb`),
  },
  (t) => [index('audit_events_target_idx').on(t.targetKeyId, t.id)],
);
