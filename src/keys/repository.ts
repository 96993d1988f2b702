import { and, eq, gt, or, sql } from 'drizzle-orm';
import type { Database } from '../db/client';
import { apiKeys } from '../db/schema';
import type { AuthenticatedKey, LimitOverride } from './types';

export type ApiKeyRow = typeof apiKeys.$inferSelect;

export function toAuthenticatedKey(row: ApiKeyRow): AuthenticatedKey {
  const limits = new Map<string, { limit: number; duration: number }[]>();
  for (const o of row.limits as LimitOverride[]) {
    const windows = limits.get(o.coordinate) ?? [];
    windows.push({ limit: o.limit, duration: o.duration });
    limits.set(o.coordinate, windows);
  }
  return Object.freeze({
    id: row.id,
    name: row.name,
    scopes: Object.freeze([...row.scopes]),
    expiresAt: row.expiresAt,
    limits,
    budget: row.budgetPoints && row.budgetDuration ? { points: row.budgetPoints, duration: row.budgetDuration } : null,
  });
}

/**
 * The key whose current secret hashes to `hash`, or whose previous secret does while its
 * rotation grace period lasts. Revoked and expired keys are filtered here, in one indexed query.
 */
export async function findActiveKeyByHash(db: Database, hash: string, now = new Date()): Promise<ApiKeyRow | null> {
  const rows = await db
    .select()
    .from(apiKeys)
    .where(
      and(
        or(eq(apiKeys.hash, hash), and(eq(apiKeys.previousHash, hash), gt(apiKeys.previousHashExpiresAt, now))),
        sql`${apiKeys.revokedAt} is null`,
        or(sql`${apiKeys.expiresAt} is null`, gt(apiKeys.expiresAt, now)),
      ),
    )
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
