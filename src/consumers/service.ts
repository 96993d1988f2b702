import { and, asc, eq, gt, ilike, isNull, or, sql, type SQL } from 'drizzle-orm';
import type { Database } from '../db/client';
import { apiKeys, auditEvents, consumers, plans, type BudgetWindow, type LimitOverride, type Quota } from '../db/schema';
import { decodeCursor, diff, encodeCursor, fail, invalidBudgets, invalidLimits, invalidName, invalidQuotas, isUuid, type Failure, type Result } from '../keys/limits-input';
import type { Page } from '../keys/service';
import type { ConsumerRow, PlanRow } from '../keys/repository';

export type PlanInput = { name?: string; budgets?: BudgetWindow[]; quotas?: Quota[]; limits?: LimitOverride[]; maxOperationCost?: number | null };
export type ConsumerInput = { name?: string; externalId?: string | null; planId?: string | null; budgets?: BudgetWindow[]; quotas?: Quota[]; limits?: LimitOverride[] };

type Transaction = Parameters<Parameters<Database['transaction']>[0]>[0];

/**
 * Consumers (a customer or an app: its keys share its budgets) and plans (named sets of limits
 * sold to consumers), shared by the GraphQL admin API and the CLI. Every change writes its audit
 * row in the same transaction, then `onChanged` drops the cached keys it touches on every
 * instance (a consumer's keys, or every key under a plan's consumers) — within a second, like a
 * revocation, so a plan raised from 50 to 80 admits 30 more at once.
 */
export class ConsumerService {
  constructor(
    private readonly options: {
      db: Database;
      /** Coordinates that carry @rateLimit: the only ones a plan or consumer may limit. */
      limitedCoordinates: ReadonlySet<string>;
      /** The most one operation may cost server-wide (MAX_QUERY_COST): a plan may lower it, not raise it. */
      maxQueryCost: number;
      onChanged?: (id: string) => void | Promise<void>;
    },
  ) {}

  private get db() {
    return this.options.db;
  }

  async createPlan(input: PlanInput & { name: string }, actorKeyId: string | null): Promise<Result<PlanRow>> {
    const invalid = this.validatePlan(input, true);
    if (invalid) return invalid;
    const plan = await this.db.transaction(async (tx) => {
      const [row] = await tx
        .insert(plans)
        .values({ name: input.name.trim(), budgets: input.budgets ?? [], quotas: input.quotas ?? [], limits: input.limits ?? [], maxOperationCost: input.maxOperationCost ?? null })
        .returning();
      await audit(tx, actorKeyId, 'plan.created', row.id, { after: planView(row) });
      return row;
    });
    return { ok: true, value: plan };
  }

  async updatePlan(id: string, input: PlanInput, actorKeyId: string | null): Promise<Result<PlanRow>> {
    const invalid = this.validatePlan(input, false);
    if (invalid) return invalid;
    if (!isUuid(id)) return fail('NOT_FOUND', `No plan with id "${id}".`, 'id');
    const result = await this.db.transaction(async (tx): Promise<Result<PlanRow>> => {
      const [before] = await tx.select().from(plans).where(eq(plans.id, id)).for('update');
      if (!before) return fail('NOT_FOUND', `No plan with id "${id}".`, 'id');
      const [row] = await tx
        .update(plans)
        .set({
          ...(input.name !== undefined ? { name: input.name.trim() } : {}),
          ...(input.budgets !== undefined ? { budgets: input.budgets } : {}),
          ...(input.quotas !== undefined ? { quotas: input.quotas } : {}),
          ...(input.limits !== undefined ? { limits: input.limits } : {}),
          ...(input.maxOperationCost !== undefined ? { maxOperationCost: input.maxOperationCost } : {}),
        })
        .where(eq(plans.id, id))
        .returning();
      await audit(tx, actorKeyId, 'plan.updated', id, diff(planView(before), planView(row), 'plan.updated'));
      return { ok: true, value: row };
    });
    if (result.ok) await this.options.onChanged?.(id);
    return result;
  }

  async createConsumer(input: ConsumerInput & { name: string }, actorKeyId: string | null): Promise<Result<ConsumerRow>> {
    const invalid = this.validateConsumer(input, true) ?? (await this.unknownPlan(input.planId)) ?? (await this.takenExternalId(input.externalId));
    if (invalid) return invalid;
    const consumer = await this.db.transaction(async (tx) => {
      const [row] = await tx
        .insert(consumers)
        .values({ name: input.name.trim(), externalId: input.externalId ?? null, planId: input.planId ?? null, budgets: input.budgets ?? [], quotas: input.quotas ?? [], limits: input.limits ?? [] })
        .returning();
      await audit(tx, actorKeyId, 'consumer.created', row.id, { after: consumerView(row) });
      return row;
    });
    return { ok: true, value: consumer };
  }

  async updateConsumer(id: string, input: ConsumerInput, actorKeyId: string | null): Promise<Result<ConsumerRow>> {
    if (!isUuid(id)) return fail('NOT_FOUND', `No consumer with id "${id}".`, 'id');
    const invalid = this.validateConsumer(input, false) ?? (await this.unknownPlan(input.planId)) ?? (await this.takenExternalId(input.externalId, id));
    if (invalid) return invalid;
    const result = await this.db.transaction(async (tx): Promise<Result<ConsumerRow>> => {
      const [before] = await tx.select().from(consumers).where(eq(consumers.id, id)).for('update');
      if (!before) return fail('NOT_FOUND', `No consumer with id "${id}".`, 'id');
      const [row] = await tx
        .update(consumers)
        .set({
          ...(input.name !== undefined ? { name: input.name.trim() } : {}),
          ...(input.externalId !== undefined ? { externalId: input.externalId } : {}),
          ...(input.planId !== undefined ? { planId: input.planId } : {}),
          ...(input.budgets !== undefined ? { budgets: input.budgets } : {}),
          ...(input.quotas !== undefined ? { quotas: input.quotas } : {}),
          ...(input.limits !== undefined ? { limits: input.limits } : {}),
        })
        .where(eq(consumers.id, id))
        .returning();
      await audit(tx, actorKeyId, 'consumer.updated', id, diff(consumerView(before), consumerView(row), 'consumer.updated'));
      return { ok: true, value: row };
    });
    if (result.ok) await this.options.onChanged?.(id);
    return result;
  }

  /** A plan in use cannot be deleted: its consumers would silently fall back to the server's defaults. */
  async deletePlan(id: string, actorKeyId: string | null): Promise<Result<PlanRow>> {
    if (!isUuid(id)) return fail('NOT_FOUND', `No plan with id "${id}".`, 'id');
    return this.db.transaction(async (tx): Promise<Result<PlanRow>> => {
      const [before] = await tx.select().from(plans).where(eq(plans.id, id)).for('update');
      if (!before) return fail('NOT_FOUND', `No plan with id "${id}".`, 'id');
      const [{ n }] = await tx.select({ n: sql<number>`count(*)::int` }).from(consumers).where(eq(consumers.planId, id));
      if (n > 0) return { ...fail('BAD_USER_INPUT', `${n} consumer(s) are on this plan: move them to another plan (updateConsumer with planId) first.`, 'id'), reason: 'PLAN_IN_USE' };
      await tx.delete(plans).where(eq(plans.id, id));
      await audit(tx, actorKeyId, 'plan.deleted', id, { before: planView(before) });
      return { ok: true, value: before };
    });
  }

  /**
   * A consumer with live keys cannot be deleted: they would silently fall back to budgets of their
   * own. Its revoked keys keep their history and lose the link.
   */
  async deleteConsumer(id: string, actorKeyId: string | null): Promise<Result<ConsumerRow>> {
    if (!isUuid(id)) return fail('NOT_FOUND', `No consumer with id "${id}".`, 'id');
    const result = await this.db.transaction(async (tx): Promise<Result<ConsumerRow>> => {
      const [before] = await tx.select().from(consumers).where(eq(consumers.id, id)).for('update');
      if (!before) return fail('NOT_FOUND', `No consumer with id "${id}".`, 'id');
      const [{ n }] = await tx.select({ n: sql<number>`count(*)::int` }).from(apiKeys).where(and(eq(apiKeys.consumerId, id), isNull(apiKeys.revokedAt)));
      if (n > 0) {
        return { ...fail('BAD_USER_INPUT', `This consumer has ${n} live key(s): revoke them, or move them to another consumer (updateApiKey with consumerId), first.`, 'id'), reason: 'CONSUMER_HAS_KEYS' };
      }
      await tx.update(apiKeys).set({ consumerId: null }).where(eq(apiKeys.consumerId, id));
      await tx.delete(consumers).where(eq(consumers.id, id));
      await audit(tx, actorKeyId, 'consumer.deleted', id, { before: consumerView(before) });
      return { ok: true, value: before };
    });
    if (result.ok) await this.options.onChanged?.(id);
    return result;
  }

  async plan(id: string): Promise<PlanRow | null> {
    if (!isUuid(id)) return null;
    const [row] = await this.db.select().from(plans).where(eq(plans.id, id));
    return row ?? null;
  }

  async consumer(id: string): Promise<ConsumerRow | null> {
    if (!isUuid(id)) return null;
    const [row] = await this.db.select().from(consumers).where(eq(consumers.id, id));
    return row ?? null;
  }

  /** Oldest first; `search` matches the name or the external id (case-insensitive, anywhere in it). */
  async consumers(args: { first: number; after?: string | null; search?: string | null }): Promise<Result<Page<ConsumerRow>>> {
    const like = args.search ? `%${args.search.replace(/[\\%_]/g, (c) => `\\${c}`)}%` : undefined;
    return this.page(consumers, args, like ? or(ilike(consumers.name, like), ilike(consumers.externalId, like)) : undefined);
  }

  async plans(args: { first: number; after?: string | null }): Promise<Result<Page<PlanRow>>> {
    return this.page(plans, args, undefined);
  }

  private async page<T extends typeof consumers | typeof plans>(table: T, args: { first: number; after?: string | null }, filter: SQL | undefined): Promise<Result<Page<T['$inferSelect']>>> {
    if (!Number.isInteger(args.first) || args.first < 1 || args.first > 100) return fail('BAD_USER_INPUT', '"first" must be from 1 to 100.', 'first');
    let position: SQL | undefined;
    if (args.after) {
      const cursor = decodeCursor(args.after);
      if (!cursor) return fail('BAD_USER_INPUT', '"after" is not a cursor returned by this API.', 'after');
      position = or(gt(table.createdAt, cursor.at), and(eq(table.createdAt, cursor.at), gt(table.id, cursor.id)));
    }
    const rows = (await this.db.select().from(table as typeof consumers).where(and(filter, position)).orderBy(asc(table.createdAt), asc(table.id)).limit(args.first + 1)) as T['$inferSelect'][];
    const [{ n }] = await this.db.select({ n: sql<number>`count(*)::int` }).from(table as typeof consumers).where(filter);
    return {
      ok: true,
      value: { nodes: rows.slice(0, args.first).map((node) => ({ cursor: encodeCursor(node.createdAt, node.id), node })), hasNextPage: rows.length > args.first, totalCount: n },
    };
  }

  private validatePlan(input: PlanInput, creating: boolean): Failure | null {
    if (input.name !== undefined || creating) {
      const invalid = invalidName(input.name);
      if (invalid) return invalid;
    }
    const cost = input.maxOperationCost;
    if (cost != null && (!Number.isInteger(cost) || cost < 1 || cost > this.options.maxQueryCost)) {
      return fail('BAD_USER_INPUT', `"maxOperationCost" must be from 1 to ${this.options.maxQueryCost} (MAX_QUERY_COST).`, 'maxOperationCost');
    }
    return invalidBudgets(input.budgets) ?? invalidQuotas(input.quotas) ?? invalidLimits(input.limits, this.options.limitedCoordinates);
  }

  private validateConsumer(input: ConsumerInput, creating: boolean): Failure | null {
    if (input.name !== undefined || creating) {
      const invalid = invalidName(input.name);
      if (invalid) return invalid;
    }
    if (input.externalId != null && (input.externalId.length < 1 || input.externalId.length > 200 || /[\u0000-\u001f\u007f]/.test(input.externalId))) {
      return fail('BAD_USER_INPUT', '"externalId" must be 1 to 200 characters, without control characters.', 'externalId');
    }
    return invalidBudgets(input.budgets) ?? invalidQuotas(input.quotas) ?? invalidLimits(input.limits, this.options.limitedCoordinates);
  }

  private async unknownPlan(planId: string | null | undefined): Promise<Failure | null> {
    if (!planId) return null;
    return (await this.plan(planId)) ? null : fail('BAD_USER_INPUT', `No plan with id "${planId}".`, 'planId');
  }

  /** The owner's customer ids are unique: a second consumer with one is refused, nothing written. */
  private async takenExternalId(externalId: string | null | undefined, self?: string): Promise<Failure | null> {
    if (!externalId) return null;
    const [other] = await this.db.select({ id: consumers.id }).from(consumers).where(eq(consumers.externalId, externalId));
    return other && other.id !== self ? fail('BAD_USER_INPUT', `A consumer with externalId "${externalId}" exists already (${other.id}).`, 'externalId') : null;
  }
}

function audit(tx: Transaction, actorKeyId: string | null, action: string, targetId: string, details: Record<string, unknown>) {
  return tx.insert(auditEvents).values({ actorKeyId, action, targetId, details });
}

const planView = (row: PlanRow) => ({ name: row.name, budgets: row.budgets, quotas: row.quotas, limits: row.limits, maxOperationCost: row.maxOperationCost });
const consumerView = (row: ConsumerRow) => ({ name: row.name, externalId: row.externalId, planId: row.planId, budgets: row.budgets, quotas: row.quotas, limits: row.limits });
