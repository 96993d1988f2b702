import { ApiError, ErrorCode, unauthenticated } from '../errors';
import type { Context } from '../context';
import type { ApiKeyRow } from '../keys/repository';
import type { KeyInput, Page, Result } from '../keys/service';

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

export const adminResolvers = {
  Query: {
    async me(_: unknown, __: unknown, ctx: Context) {
      const row = await ctx.keys.get(ctx.apiKey.id);
      // Revoked between the cache lookup and now.
      if (!row) throw unauthenticated('The API key is not valid.');
      return row;
    },
    apiKey: (_: unknown, args: { id: string }, ctx: Context) => ctx.keys.get(args.id),
    async apiKeys(_: unknown, args: { first: number; after?: string; includeRevoked: boolean }, ctx: Context) {
      return connection(unwrap(await ctx.keys.list(args)));
    },
    async auditEvents(_: unknown, args: { first: number; after?: string; keyId?: string }, ctx: Context) {
      return connection(unwrap(await ctx.keys.auditEvents(args)));
    },
  },
  Mutation: {
    async createApiKey(_: unknown, { input }: Args<KeyInput & { name: string }>, ctx: Context) {
      const { secret, key } = unwrap(await ctx.keys.create(input, ctx.apiKey.id));
      return { secret, apiKey: key };
    },
    async updateApiKey(_: unknown, args: Args<KeyInput> & { id: string }, ctx: Context) {
      return unwrap(await ctx.keys.update(args.id, args.input, ctx.apiKey.id));
    },
    async revokeApiKey(_: unknown, args: { id: string }, ctx: Context) {
      return unwrap(await ctx.keys.revoke(args.id, ctx.apiKey.id));
    },
    async rotateApiKey(_: unknown, args: { id: string; gracePeriodSeconds: number }, ctx: Context) {
      const { secret, key } = unwrap(await ctx.keys.rotate(args.id, args.gracePeriodSeconds, ctx.apiKey.id));
      return { secret, apiKey: key };
    },
  },
  ApiKey: {
    budget: (key: ApiKeyRow) => (key.budgetPoints && key.budgetDuration ? { points: key.budgetPoints, duration: key.budgetDuration } : null),
    previousSecretValidUntil: (key: ApiKeyRow) =>
      key.previousHashExpiresAt && key.previousHashExpiresAt.getTime() > Date.now() ? key.previousHashExpiresAt : null,
    usage: (key: ApiKeyRow, _: unknown, ctx: Context) => ctx.usage.forKey(key.id, key.limits),
  },
  AuditEvent: {
    id: (event: { id: number }) => String(event.id),
  },
};
