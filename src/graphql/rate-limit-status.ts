import type { TollgateContext } from './context';

/** Query.rateLimit: reads what the operation gate recorded for this request; spends nothing. */
export const rateLimitStatusResolvers = {
  Query: {
    rateLimit(_: unknown, __: unknown, ctx: TollgateContext) {
      const { cost } = ctx.admission;
      const limit = cost.limit ?? 0;
      const remaining = cost.remaining ?? limit;
      return {
        limit,
        window: cost.window ?? 0,
        cost: cost.requested ?? 0,
        remaining,
        used: limit - remaining,
        resetAt: cost.resetAt ?? new Date(),
        windows: cost.windows ?? [],
      };
    },
  },
};
