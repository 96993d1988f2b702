import type { BudgetWindow, LimitOverride, Quota } from '../db/schema';
import type { KeyRestrictions } from './restrictions';

/**
 * One window of a budget: `limit` points per `duration` seconds. `cap`: a key's own cap under
 * its consumer, counted for that key alone (the other windows are the consumer's, shared by all
 * its keys).
 */
export type KeyWindow = { limit: number; duration: number; cap?: true; period?: 'DAY' | 'MONTH' };

/** What the gates need to know about the calling key; lives in ctx.apiKey and in the key cache. */
export type AuthenticatedKey = Readonly<{
  id: string;
  name: string;
  scopes: readonly string[];
  expiresAt: Date | null;
  /**
   * Whose budgets the key spends, and the name its counters carry: its consumer's id, or its own
   * when it has no consumer.
   */
  owner: string;
  consumerId: string | null;
  planId: string | null;
  /**
   * Per-coordinate windows that replace the schema's limits: the key's own, or under a consumer
   * the consumer's over its plan's.
   */
  limits: ReadonlyMap<string, readonly KeyWindow[]>;
  /** The key's own field caps under a consumer (`cap` windows), taken beside the consumer's. */
  limitCaps: ReadonlyMap<string, readonly KeyWindow[]>;
  /** The owner's operation-budget windows; null: the server's default. */
  budgets: readonly KeyWindow[] | null;
  /** The owner's calendar quotas (`period` windows), taken with the budgets. */
  quotas: readonly KeyWindow[];
  /** The key's own operation-budget caps under a consumer (empty otherwise). */
  budgetCaps: readonly KeyWindow[];
  /** The most one operation may cost, from the plan; null: MAX_QUERY_COST. */
  maxOperationCost: number | null;
  /** Where the key may be used from (allowedIps, allowedOrigins); absent: anywhere. */
  restrictions?: KeyRestrictions;
}>;

export type { BudgetWindow, LimitOverride, Quota };
