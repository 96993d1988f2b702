import { eq, or, sql } from 'drizzle-orm';
import type { Database } from '../db/client';
import { apiKeys, consumers, plans } from '../db/schema';
import type { AuthenticatedKey, BudgetWindow, KeyWindow, LimitOverride } from './types';
import { compileRestrictions } from './restrictions';

export type ApiKeyRow = typeof apiKeys.$inferSelect;
export type ConsumerRow = typeof consumers.$inferSelect;
export type PlanRow = typeof plans.$inferSelect;

/** A key as it was found: its row, and its consumer's and plan's when it has them. */
export type KeyRecord = { key: ApiKeyRow; consumer: ConsumerRow | null; plan: PlanRow | null };

const byCoordinate = (overrides: readonly LimitOverride[], cap?: true) => {
  const windows = new Map<string, KeyWindow[]>();
  for (const o of overrides) windows.set(o.coordinate, [...(windows.get(o.coordinate) ?? []), cap ? { limit: o.limit, duration: o.duration, cap } : { limit: o.limit, duration: o.duration }]);
  return windows;
};
const asWindows = (budgets: readonly BudgetWindow[], cap?: true): KeyWindow[] => budgets.map((b) => (cap ? { limit: b.points, duration: b.duration, cap } : { limit: b.points, duration: b.duration }));
/** A key's own windows: `budget` (the one window keys always had), then `budgets`. */
const ownBudget = (row: ApiKeyRow): BudgetWindow[] => [...(row.budgetPoints && row.budgetDuration ? [{ points: row.budgetPoints, duration: row.budgetDuration }] : []), ...row.budgets];

/** The budget windows a consumer's keys share (its own, else its plan's); null: the server's default. */
const sharedBudgets = (consumer: ConsumerRow, plan: PlanRow | null): KeyWindow[] | null => {
  const shared = consumer.budgets.length ? consumer.budgets : plan?.budgets ?? [];
  return shared.length ? asWindows(shared) : null;
};

/** A consumer's calendar quotas (its own, else its plan's) as windows. */
const quotasOf = (consumer: ConsumerRow, plan: PlanRow | null): KeyWindow[] =>
  (consumer.quotas.length ? consumer.quotas : plan?.quotas ?? []).map((q) => ({ limit: q.points, duration: q.period === 'DAY' ? 86_400 : 31 * 86_400, period: q.period }));

/**
 * A consumer as the owner of the budgets its keys share, with no key of its own: its windows and
 * quotas (its own, else its plan's, else the server's default), counted under its name. What
 * `Consumer.windows` reads.
 */
export function consumerAsOwner(consumer: ConsumerRow, plan: PlanRow | null): AuthenticatedKey {
  return Object.freeze({
    id: consumer.id,
    name: consumer.name,
    scopes: Object.freeze([]),
    expiresAt: null,
    owner: consumer.id,
    consumerId: consumer.id,
    planId: plan?.id ?? null,
    limits: new Map(),
    limitCaps: new Map(),
    budgets: sharedBudgets(consumer, plan),
    quotas: quotasOf(consumer, plan),
    budgetCaps: [],
    maxOperationCost: plan?.maxOperationCost ?? null,
    restrictions: compileRestrictions([], []),
  });
}

/**
 * What the gates decide on. A key without a consumer spends its own budgets, as it always did. A
 * key under a consumer spends the consumer's — the consumer's own windows and limits, else its
 * plan's, coordinate by coordinate, else the server's defaults — and its own budget and limits
 * cap it on top, taken in the same take.
 */
export function toAuthenticatedKey({ key: row, consumer, plan }: KeyRecord): AuthenticatedKey {
  let limits: Map<string, KeyWindow[]>;
  let budgets: KeyWindow[] | null;
  let budgetCaps: KeyWindow[] = [];
  let limitCaps = new Map<string, KeyWindow[]>();
  let quotas: KeyWindow[] = [];
  if (!consumer) {
    limits = byCoordinate(row.limits);
    budgets = ownBudget(row).length ? asWindows(ownBudget(row)) : null;
  } else {
    limits = new Map([...byCoordinate(plan?.limits ?? []), ...byCoordinate(consumer.limits)]);
    budgets = sharedBudgets(consumer, plan);
    budgetCaps = asWindows(ownBudget(row), true);
    quotas = quotasOf(consumer, plan);
    limitCaps = byCoordinate(row.limits, true);
  }
  return Object.freeze({
    id: row.id,
    name: row.name,
    scopes: Object.freeze([...row.scopes]),
    expiresAt: row.expiresAt,
    owner: consumer?.id ?? row.id,
    consumerId: consumer?.id ?? null,
    planId: plan?.id ?? null,
    limits,
    limitCaps,
    budgets,
    quotas,
    budgetCaps,
    maxOperationCost: plan?.maxOperationCost ?? null,
    restrictions: compileRestrictions(row.allowedIps ?? [], row.allowedOrigins ?? []),
  });
}

/**
 * The key whose current secret hashes to `hash`, or whose previous secret does (one indexed
 * query, the key with its consumer and plan) — revoked, expired or past its grace period
 * included: the authenticator judges those, so its log can say which (`stateOf`).
 */
export async function findKeyByHash(db: Database, hash: string): Promise<KeyRecord | null> {
  const rows = await db
    .select({ key: apiKeys, consumer: consumers, plan: plans })
    .from(apiKeys)
    .leftJoin(consumers, eq(consumers.id, apiKeys.consumerId))
    .leftJoin(plans, eq(plans.id, consumers.planId))
    .where(or(eq(apiKeys.hash, hash), eq(apiKeys.previousHash, hash)))
    .limit(1);
  return rows[0] ?? null;
}

/** Whether a found key's secret works at `now`: revoked, expired (the key, or an old secret's grace period), or active. */
export function stateOf(row: ApiKeyRow, hash: string, now: number): 'active' | 'revoked' | 'expired' {
  if (row.revokedAt) return 'revoked';
  if (row.expiresAt && row.expiresAt.getTime() <= now) return 'expired';
  if (row.hash !== hash && !(row.previousHashExpiresAt && row.previousHashExpiresAt.getTime() > now)) return 'expired';
  return 'active';
}

/** A key's record by id (its consumer and plan with it), for reading its standing. */
export async function findKeyRecord(db: Database, id: string): Promise<KeyRecord | null> {
  const rows = await db
    .select({ key: apiKeys, consumer: consumers, plan: plans })
    .from(apiKeys)
    .leftJoin(consumers, eq(consumers.id, apiKeys.consumerId))
    .leftJoin(plans, eq(plans.id, consumers.planId))
    .where(eq(apiKeys.id, id))
    .limit(1);
  return rows[0] ?? null;
}

/** One UPDATE for every key seen since the last flush. */
export async function touchLastUsed(db: Database, ids: string[], at: Date): Promise<void> {
  if (ids.length === 0) return;
  await db
    .update(apiKeys)
    .set({ lastUsedAt: at })
    .where(sql`${apiKeys.id} in (${sql.join(ids.map((id) => sql`${id}::uuid`), sql`, `)})`);
}
