import type { Context } from '../context';

/** Query.rateLimit: reads what the operation gate recorded for this request; spends nothing. */
export const rateLimitStatusResolvers = {
  Query: {
    rateLimit(_: unknown, __: unknown, ctx: Context) {
      const limit = ctx.cost.limit ?? 0;
      const remaining = ctx.cost.remaining ?? limit;
      return {
        limit,
        window: ctx.cost.window ?? 0,
        cost: ctx.cost.requested ?? 0,
        remaining,
        used: limit - remaining,
        resetAt: ctx.cost.resetAt ?? new Date(),
      };
    },
  },
};
