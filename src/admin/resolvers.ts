import { ApiError, ErrorCode, unauthenticated } from '../errors';
import type { TollgateContext } from '../graphql/context';
import type { KeyService } from '../keys/service';
import type { ConsumerInput, ConsumerService, PlanInput } from '../consumers/service';
import { consumerAsOwner, type ConsumerRow } from '../keys/repository';
import type { AuthenticatedKey } from '../keys/types';
import type { WindowStanding } from '../gates/pipeline';
import type { FieldUsageReader } from '../gates/usage';
import type { ApiKeyRow } from '../keys/repository';
import type { KeyInput, Page, Result } from '../keys/service';
import { checkRange, type UsageHistory, type UsageSubject } from '../usage/history';
import { fail } from '../keys/limits-input';
import type { Granularity } from '../db/schema';
import type { Outbox, WebhookDeliveryRow } from '../alerts/outbox';

type Context = TollgateContext;

/** Turns a service Failure into the GraphQL error a client sees. */
function unwrap<T>(result: Result<T>): T {
  if (result.ok) return result.value;
  throw new ApiError(ErrorCode[result.code], result.message, { ...(result.field ? { field: result.field } : {}), ...(result.reason ? { reason: result.reason } : {}) });
}

function connection<T>(page: Page<T>) {
  return {
    edges: page.nodes,
    pageInfo: { hasNextPage: page.hasNextPage, endCursor: page.nodes.at(-1)?.cursor ?? null },
    totalCount: page.totalCount,
  };
}

type Args<T> = { input: T };
type RangeArgs = { from: Date; to: Date; granularity: 'MINUTE' | 'HOUR' | 'DAY' | null };

/** The admin API's resolvers, over the key service and usage reader they are given. */
export const adminResolvers = (services: { keys: KeyService; consumers: ConsumerService; usage: FieldUsageReader; history: UsageHistory; hourRetentionMs: number; outbox: Outbox; rotationDays?: number; standing: (owner: AuthenticatedKey) => Promise<WindowStanding[]> }) => {
  const history = (subject: UsageSubject, args: RangeArgs) => {
    // An explicit null replaces the default: it means the default.
    const granularity = (args.granularity ?? 'HOUR').toLowerCase() as Granularity;
    const range = unwrap(checkRange(args.from, args.to, granularity));
    return services.history.read(subject, range.from, range.to, granularity);
  };
  return {
  Query: {
    async me(_: unknown, __: unknown, ctx: Context) {
      const row = await services.keys.get(ctx.apiKey.id);
      // Revoked between the cache lookup and now.
      if (!row) throw unauthenticated('The API key is not valid.');
      return row;
    },
    apiKey: (_: unknown, args: { id: string }) => services.keys.get(args.id),
    async apiKeys(_: unknown, args: { first: number; after?: string; includeRevoked: boolean }) {
      return connection(unwrap(await services.keys.list(args)));
    },
    async auditEvents(_: unknown, args: { first: number; after?: string; keyId?: string; targetId?: string }) {
      return connection(unwrap(await services.keys.auditEvents(args)));
    },
    consumer: (_: unknown, args: { id: string }) => services.consumers.consumer(args.id),
    async consumers(_: unknown, args: { first: number; after?: string; search?: string }) {
      return connection(unwrap(await services.consumers.consumers(args)));
    },
    plan: (_: unknown, args: { id: string }) => services.consumers.plan(args.id),
    async plans(_: unknown, args: { first: number; after?: string }) {
      return connection(unwrap(await services.consumers.plans(args)));
    },
    async webhookDeliveries(_: unknown, args: { first: number; after?: string; status?: string }) {
      const page = unwrap(await services.outbox.list({ ...args, status: args.status?.toLowerCase() }));
      return { edges: page.nodes.map((node) => ({ cursor: node.cursor, node })), pageInfo: { hasNextPage: page.hasNextPage, endCursor: page.nodes.at(-1)?.cursor ?? null } };
    },
    async usageTop(_: unknown, args: { from: Date; to: Date; by: 'CONSUMER' | 'KEY'; first: number }) {
      if (!Number.isInteger(args.first) || args.first < 1 || args.first > 100) unwrap(fail('BAD_USER_INPUT', '"first" must be from 1 to 100.', 'first'));
      if (args.from > args.to) unwrap(fail('BAD_USER_INPUT', '"from" must not be after "to".', 'from'));
      const rows = await services.history.top(args.by, args.from, args.to, args.first, services.hourRetentionMs);
      return Promise.all(rows.map(async (row) => ({
        ...row,
        consumer: args.by === 'CONSUMER' ? services.consumers.consumer(row.id) : null,
        key: args.by === 'KEY' ? services.keys.get(row.id) : null,
      })));
    },
    async usageTotals(_: unknown, args: { from: Date; to: Date }) {
      if (args.from > args.to) unwrap(fail('BAD_USER_INPUT', '"from" must not be after "to".', 'from'));
      return services.history.totals(args.from, args.to, services.hourRetentionMs);
    },
  },
  Mutation: {
    async createApiKey(_: unknown, { input }: Args<KeyInput & { name: string }>, ctx: Context) {
      const { secret, key } = unwrap(await services.keys.create(input, ctx.apiKey.id));
      return { secret, apiKey: key };
    },
    async updateApiKey(_: unknown, args: Args<KeyInput> & { id: string }, ctx: Context) {
      return unwrap(await services.keys.update(args.id, args.input, ctx.apiKey.id));
    },
    async revokeApiKey(_: unknown, args: { id: string }, ctx: Context) {
      return unwrap(await services.keys.revoke(args.id, ctx.apiKey.id));
    },
    async createPlan(_: unknown, { input }: Args<PlanInput & { name: string }>, ctx: Context) {
      return unwrap(await services.consumers.createPlan(input, ctx.apiKey.id));
    },
    async updatePlan(_: unknown, args: Args<PlanInput> & { id: string }, ctx: Context) {
      return unwrap(await services.consumers.updatePlan(args.id, args.input, ctx.apiKey.id));
    },
    async createConsumer(_: unknown, { input }: Args<ConsumerInput & { name: string }>, ctx: Context) {
      return unwrap(await services.consumers.createConsumer(input, ctx.apiKey.id));
    },
    async updateConsumer(_: unknown, args: Args<ConsumerInput> & { id: string }, ctx: Context) {
      return unwrap(await services.consumers.updateConsumer(args.id, args.input, ctx.apiKey.id));
    },
    async deletePlan(_: unknown, args: { id: string }, ctx: Context) {
      return unwrap(await services.consumers.deletePlan(args.id, ctx.apiKey.id));
    },
    async deleteConsumer(_: unknown, args: { id: string }, ctx: Context) {
      return unwrap(await services.consumers.deleteConsumer(args.id, ctx.apiKey.id));
    },
    async rotateApiKey(_: unknown, args: { id: string; gracePeriodSeconds: number }, ctx: Context) {
      const { secret, key } = unwrap(await services.keys.rotate(args.id, args.gracePeriodSeconds, ctx.apiKey.id));
      return { secret, apiKey: key };
    },
  },
  ApiKey: {
    budget: (key: ApiKeyRow) => (key.budgetPoints && key.budgetDuration ? { points: key.budgetPoints, duration: key.budgetDuration } : null),
    previousSecretValidUntil: (key: ApiKeyRow) =>
      key.previousHashExpiresAt && key.previousHashExpiresAt.getTime() > Date.now() ? key.previousHashExpiresAt : null,
    consumer: (key: ApiKeyRow) => (key.consumerId ? services.consumers.consumer(key.consumerId) : null),
    async usage(key: ApiKeyRow) {
      const standing = await services.keys.standing(key.id);
      return standing ? services.usage.forKey(standing) : [];
    },
    usageHistory: (key: ApiKeyRow, args: RangeArgs) => history({ keyId: key.id }, args),
    rotationDueAt: (key: ApiKeyRow) => (services.rotationDays && !key.revokedAt ? new Date(key.secretCreatedAt.getTime() + services.rotationDays * 86_400_000) : null),
  },
  Consumer: {
    plan: (consumer: ConsumerRow) => (consumer.planId ? services.consumers.plan(consumer.planId) : null),
    async keys(consumer: ConsumerRow, args: { first: number; after?: string }) {
      return connection(unwrap(await services.keys.list({ ...args, includeRevoked: false, consumerId: consumer.id })));
    },
    usageHistory: (consumer: ConsumerRow, args: RangeArgs) => history({ consumerId: consumer.id }, args),
    async windows(consumer: ConsumerRow) {
      const plan = consumer.planId ? await services.consumers.plan(consumer.planId) : null;
      return services.standing(consumerAsOwner(consumer, plan ?? null));
    },
  },
  AuditEvent: {
    id: (event: { id: number }) => String(event.id),
  },
  WebhookDelivery: {
    status: (row: WebhookDeliveryRow) => row.status.toUpperCase(),
    nextAttemptAt: (row: WebhookDeliveryRow) => (row.status === 'pending' ? row.nextAttemptAt : null),
  },
  };
};
