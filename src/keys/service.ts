import { and, desc, asc, eq, gt, or, sql, type SQL } from 'drizzle-orm';
import type { Database } from '../db/client';
import { apiKeys, auditEvents, consumers, type LimitOverride } from '../db/schema';
import { decodeCursor, diff, encodeCursor, fail, invalidBudgets, invalidLimits, invalidName, isUuid, type Failure, type Result } from './limits-input';
import { displayStart, generateKey, hashKey } from './format';
import { findKeyRecord, toAuthenticatedKey, type ApiKeyRow } from './repository';
import type { AuthenticatedKey } from './types';
import { normalizeAllowedIps, normalizeAllowedOrigins } from './restrictions';

export type { Failure, Result };

export type KeyInput = {
  name?: string;
  scopes?: string[];
  expiresAt?: Date | null;
  limits?: LimitOverride[];
  budget?: { points: number; duration: number } | null;
  /** More operation-budget windows beside `budget`: a request must fit in every one. */
  budgets?: { points: number; duration: number }[];
  /** The consumer whose budgets the key spends (its own budget and limits then cap it); null: none. */
  consumerId?: string | null;
  /** Client addresses (CIDR ranges or single addresses) the key may be used from; empty or null: any. */
  allowedIps?: string[] | null;
  /** Exact browser origins the key may be used from; empty or null: any (and no Origin needed). */
  allowedOrigins?: string[] | null;
};

export type Page<T> = { nodes: { cursor: string; node: T }[]; hasNextPage: boolean; totalCount: number };
export type AuditEvent = typeof auditEvents.$inferSelect;

/** Arbitrary, fixed: the advisory lock id that serialises first-start bootstraps. */
const FIRST_ADMIN_LOCK = 7_411_001;
type Transaction = Parameters<Parameters<Database['transaction']>[0]>[0];

/**
 * Key administration, shared by the GraphQL admin API and the `keys` CLI. Every change writes
 * its audit row in the same transaction; secrets are returned once and never stored or audited.
 */
export class KeyService {
  constructor(
    private readonly options: {
      db: Database;
      prefix: string;
      scopes: readonly string[];
      /** Coordinates that carry @rateLimit: the only ones a key may override. */
      limitedCoordinates: ReadonlySet<string>;
      /** Called after a key is created or changed, so caches on every instance can drop it. */
      onKeyChanged?: (keyId: string) => void | Promise<void>;
    },
  ) {}

  private get db() {
    return this.options.db;
  }

  async create(input: KeyInput & { name: string }, actorKeyId: string | null): Promise<Result<{ secret: string; key: ApiKeyRow }>> {
    const invalid = this.validate(input, true) ?? (await this.unknownConsumer(input));
    if (invalid) return invalid;
    const created = await this.db.transaction((tx) => this.insert(tx, input, actorKeyId));
    // Nothing caches a new key; this tells the alert watch (a key made to expire soon is warned now).
    await this.options.onKeyChanged?.(created.key.id);
    return { ok: true, value: created };
  }

  /**
   * The first start's admin key: created only if the database holds no key at all. An advisory
   * lock makes instances that start together on an empty database agree on one.
   */
  async createFirstAdmin(scopes: readonly string[]): Promise<{ secret: string; key: ApiKeyRow } | null> {
    return this.db.transaction(async (tx) => {
      await tx.execute(sql`select pg_advisory_xact_lock(${FIRST_ADMIN_LOCK})`);
      const [{ n }] = await tx.select({ n: sql<number>`count(*)::int` }).from(apiKeys);
      return n > 0 ? null : this.insert(tx, { name: 'bootstrap admin', scopes: [...scopes] }, null);
    });
  }

  private async insert(tx: Transaction, input: KeyInput & { name: string }, actorKeyId: string | null) {
    const secret = generateKey(this.options.prefix);
    const [key] = await tx
      .insert(apiKeys)
      .values({
        name: input.name,
        start: displayStart(secret, this.options.prefix),
        hash: hashKey(secret),
        scopes: unique(input.scopes ?? []),
        expiresAt: input.expiresAt ?? null,
        limits: input.limits ?? [],
        budgetPoints: input.budget?.points ?? null,
        budgetDuration: input.budget?.duration ?? null,
        budgets: input.budgets ?? [],
        consumerId: input.consumerId ?? null,
        allowedIps: restrictedIps(input) ?? [],
        allowedOrigins: restrictedOrigins(input) ?? [],
      })
      .returning();
    await tx.insert(auditEvents).values({ actorKeyId, action: 'key.created', targetKeyId: key.id, details: { after: publicView(key) } });
    return { secret, key };
  }

  async update(id: string, input: KeyInput, actorKeyId: string | null): Promise<Result<ApiKeyRow>> {
    const invalid = this.validate(input, false) ?? (await this.unknownConsumer(input));
    if (invalid) return invalid;
    return this.change(id, actorKeyId, 'key.updated', () => ({
      ...(input.name !== undefined ? { name: input.name } : {}),
      ...(input.scopes !== undefined ? { scopes: unique(input.scopes) } : {}),
      ...(input.expiresAt !== undefined ? { expiresAt: input.expiresAt } : {}),
      ...(input.limits !== undefined ? { limits: input.limits } : {}),
      ...(input.budget !== undefined ? { budgetPoints: input.budget?.points ?? null, budgetDuration: input.budget?.duration ?? null } : {}),
      ...(input.budgets !== undefined ? { budgets: input.budgets } : {}),
      ...(input.consumerId !== undefined ? { consumerId: input.consumerId } : {}),
      ...(input.allowedIps !== undefined ? { allowedIps: restrictedIps(input) ?? [] } : {}),
      ...(input.allowedOrigins !== undefined ? { allowedOrigins: restrictedOrigins(input) ?? [] } : {}),
    }));
  }

  /** A consumerId that names no consumer: BAD_USER_INPUT, nothing written. */
  private async unknownConsumer(input: KeyInput): Promise<Failure | null> {
    if (!input.consumerId) return null;
    const unknown = fail('BAD_USER_INPUT', `No consumer with id "${input.consumerId}".`, 'consumerId');
    if (!isUuid(input.consumerId)) return unknown;
    const [found] = await this.db.select({ id: consumers.id }).from(consumers).where(eq(consumers.id, input.consumerId));
    return found ? null : unknown;
  }

  /** Idempotent: revoking a revoked key returns it unchanged and writes no second audit row. */
  async revoke(id: string, actorKeyId: string | null): Promise<Result<ApiKeyRow>> {
    return this.change(id, actorKeyId, 'key.revoked', (before) => (before.revokedAt ? null : { revokedAt: new Date() }));
  }

  /** New secret, same key id: budgets, overrides and history continue. */
  async rotate(id: string, gracePeriodSeconds: number, actorKeyId: string | null): Promise<Result<{ secret: string; key: ApiKeyRow }>> {
    if (!Number.isInteger(gracePeriodSeconds) || gracePeriodSeconds < 0 || gracePeriodSeconds > 30 * 24 * 3600) {
      return fail('BAD_USER_INPUT', '"gracePeriodSeconds" must be from 0 to 2592000 (30 days).', 'gracePeriodSeconds');
    }
    const secret = generateKey(this.options.prefix);
    const result = await this.change(id, actorKeyId, 'key.rotated', (before) => {
      if (before.revokedAt) return fail('BAD_USER_INPUT', 'A revoked key cannot be rotated.', 'id');
      return {
        hash: hashKey(secret),
        start: displayStart(secret, this.options.prefix),
        previousHash: gracePeriodSeconds > 0 ? before.hash : null,
        previousHashExpiresAt: gracePeriodSeconds > 0 ? new Date(Date.now() + gracePeriodSeconds * 1000) : null,
        secretCreatedAt: new Date(),
      };
    });
    return result.ok ? { ok: true, value: { secret, key: result.value } } : result;
  }

  /** What the gates decide a key's requests on (its consumer and plan applied), for reading its standing. */
  async standing(id: string): Promise<AuthenticatedKey | null> {
    if (!isUuid(id)) return null;
    const record = await findKeyRecord(this.db, id);
    return record && toAuthenticatedKey(record);
  }

  async get(id: string): Promise<ApiKeyRow | null> {
    if (!isUuid(id)) return null;
    const [row] = await this.db.select().from(apiKeys).where(eq(apiKeys.id, id));
    return row ?? null;
  }

  async list(args: { first: number; after?: string | null; includeRevoked: boolean; consumerId?: string }): Promise<Result<Page<ApiKeyRow>>> {
    if (!Number.isInteger(args.first) || args.first < 1 || args.first > 100) return fail('BAD_USER_INPUT', '"first" must be from 1 to 100.', 'first');
    const filter = and(args.includeRevoked ? undefined : sql`${apiKeys.revokedAt} is null`, args.consumerId ? eq(apiKeys.consumerId, args.consumerId) : undefined);
    let position: SQL | undefined;
    if (args.after) {
      const cursor = decodeCursor(args.after);
      if (!cursor) return fail('BAD_USER_INPUT', '"after" is not a cursor returned by this API.', 'after');
      position = or(gt(apiKeys.createdAt, cursor.at), and(eq(apiKeys.createdAt, cursor.at), gt(apiKeys.id, cursor.id)));
    }
    const rows = await this.db.select().from(apiKeys).where(and(filter, position)).orderBy(asc(apiKeys.createdAt), asc(apiKeys.id)).limit(args.first + 1);
    const [{ n }] = await this.db.select({ n: sql<number>`count(*)::int` }).from(apiKeys).where(filter);
    return {
      ok: true,
      value: {
        nodes: rows.slice(0, args.first).map((node) => ({ cursor: encodeCursor(node.createdAt, node.id), node })),
        hasNextPage: rows.length > args.first,
        totalCount: n,
      },
    };
  }

  async auditEvents(args: { first: number; after?: string | null; keyId?: string | null; targetId?: string | null }): Promise<Result<Page<AuditEvent>>> {
    if (!Number.isInteger(args.first) || args.first < 1 || args.first > 100) return fail('BAD_USER_INPUT', '"first" must be from 1 to 100.', 'first');
    if (args.keyId && !isUuid(args.keyId)) return fail('BAD_USER_INPUT', '"keyId" is not a key id.', 'keyId');
    if (args.targetId && !isUuid(args.targetId)) return fail('BAD_USER_INPUT', '"targetId" is not a consumer or plan id.', 'targetId');
    let before: number | undefined;
    if (args.after) {
      const match = /^audit:(\d{1,15})$/.exec(Buffer.from(args.after, 'base64url').toString('utf8'));
      if (!match) return fail('BAD_USER_INPUT', '"after" is not a cursor returned by this API.', 'after');
      before = Number(match[1]);
    }
    const filter = and(args.keyId ? eq(auditEvents.targetKeyId, args.keyId) : undefined, args.targetId ? eq(auditEvents.targetId, args.targetId) : undefined);
    const rows = await this.db
      .select()
      .from(auditEvents)
      .where(and(filter, before !== undefined ? sql`${auditEvents.id} < ${before}` : undefined))
      .orderBy(desc(auditEvents.id))
      .limit(args.first + 1);
    const [{ n }] = await this.db.select({ n: sql<number>`count(*)::int` }).from(auditEvents).where(filter);
    return {
      ok: true,
      value: {
        nodes: rows.slice(0, args.first).map((node) => ({ cursor: Buffer.from(`audit:${node.id}`).toString('base64url'), node })),
        hasNextPage: rows.length > args.first,
        totalCount: n,
      },
    };
  }

  /**
   * Applies `patch` (or a Failure, or null for "nothing to do") to one key inside a transaction
   * that locks the active admin keys, so the lockout guard cannot be raced.
   */
  private async change(
    id: string,
    actorKeyId: string | null,
    action: string,
    patch: (before: ApiKeyRow) => Partial<ApiKeyRow> | Failure | null,
  ): Promise<Result<ApiKeyRow>> {
    if (!isUuid(id)) return fail('NOT_FOUND', `No API key with id "${id}".`, 'id');
    const result = await this.db.transaction(async (tx): Promise<Result<ApiKeyRow>> => {
      const admins = await tx
        .select({ id: apiKeys.id })
        .from(apiKeys)
        .where(and(sql`${apiKeys.revokedAt} is null`, sql`'admin' = any(${apiKeys.scopes})`, or(sql`${apiKeys.expiresAt} is null`, gt(apiKeys.expiresAt, new Date()))))
        .for('update');
      const [before] = await tx.select().from(apiKeys).where(eq(apiKeys.id, id)).for('update');
      if (!before) return fail('NOT_FOUND', `No API key with id "${id}".`, 'id');
      const changes = patch(before);
      if (changes === null) return { ok: true, value: before };
      if ('ok' in changes) return changes;
      const after = { ...before, ...changes };
      const wasActiveAdmin = admins.some((a) => a.id === id);
      // Setting an expiry counts as expiring it; an expiry it already had (and still is active under) does not.
      const setsExpiry = 'expiresAt' in changes && !!changes.expiresAt && changes.expiresAt.getTime() !== before.expiresAt?.getTime();
      const staysActiveAdmin = !after.revokedAt && !setsExpiry && after.scopes.includes('admin');
      if (wasActiveAdmin && !staysActiveAdmin && admins.length === 1) {
        return { ...fail('FORBIDDEN', 'This is the last active admin key: create another admin key before revoking, expiring or demoting it.', 'id'), reason: 'LAST_ADMIN_KEY' };
      }
      const [row] = await tx.update(apiKeys).set(changes).where(eq(apiKeys.id, id)).returning();
      await tx.insert(auditEvents).values({ actorKeyId, action, targetKeyId: id, details: diff(publicView(before), publicView(row), action) });
      return { ok: true, value: row };
    });
    if (result.ok) await this.options.onKeyChanged?.(id);
    return result;
  }

  private validate(input: KeyInput, creating: boolean): Failure | null {
    if (input.name !== undefined || creating) {
      const invalid = invalidName(input.name);
      if (invalid) return invalid;
    }
    for (const scope of input.scopes ?? []) {
      if (!this.options.scopes.includes(scope)) {
        return fail('BAD_USER_INPUT', `Unknown scope "${scope}"; known scopes: ${this.options.scopes.join(', ')}.`, 'scopes');
      }
    }
    if (input.expiresAt) {
      if (Number.isNaN(input.expiresAt.getTime()) || input.expiresAt.getTime() <= Date.now()) {
        return fail('BAD_USER_INPUT', '"expiresAt" must be in the future.', 'expiresAt');
      }
    }
    for (const checked of [normalizeAllowedIps(input.allowedIps ?? []), normalizeAllowedOrigins(input.allowedOrigins ?? [])]) {
      if (!checked.ok) return checked;
    }
    return (
      invalidLimits(input.limits, this.options.limitedCoordinates) ??
      invalidBudgets(input.budget ? [input.budget] : undefined, 'budget') ??
      invalidBudgets(input.budgets) ??
      // `budget` and `budgets` together are one list of windows: one per length
      (input.budget && input.budgets?.some((b) => b.duration === input.budget!.duration)
        ? fail('BAD_USER_INPUT', `"budget" and "budgets" both have a ${input.budget.duration}-second window; give one.`, 'budgets')
        : null)
    );
  }
}

/** The fields of a key that may appear in an audit row: never a hash, never a secret. */
function publicView(row: ApiKeyRow) {
  return {
    name: row.name,
    start: row.start,
    scopes: row.scopes,
    expiresAt: row.expiresAt?.toISOString() ?? null,
    revokedAt: row.revokedAt?.toISOString() ?? null,
    limits: row.limits,
    budget: row.budgetPoints ? { points: row.budgetPoints, duration: row.budgetDuration } : null,
    budgets: row.budgets,
    consumerId: row.consumerId,
    allowedIps: row.allowedIps,
    allowedOrigins: row.allowedOrigins,
    previousSecretValidUntil: row.previousHashExpiresAt?.toISOString() ?? null,
  };
}

const unique = (values: string[]) => [...new Set(values)];

/** The input's lists as stored (canonical, each once); validate() has refused any that do not parse. */
const normalized = (checked: { ok: true; value: string[] } | { ok: false }) => (checked.ok ? checked.value : []);
const restrictedIps = (input: KeyInput) => input.allowedIps && normalized(normalizeAllowedIps(input.allowedIps));
const restrictedOrigins = (input: KeyInput) => input.allowedOrigins && normalized(normalizeAllowedOrigins(input.allowedOrigins));
