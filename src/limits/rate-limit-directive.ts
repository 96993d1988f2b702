import type { GraphQLSchema } from 'graphql';
import { rateLimitDirective } from 'graphql-rate-limit-directive';
import { RateLimiterCompatibleAbstract, type IRateLimiterOptions, type RateLimiterAbstract, type RateLimiterRes } from 'rate-limiter-flexible';
import { LRUCache } from 'lru-cache';
import { ApiError, ErrorCode, badUserInput, limitExtensions } from '../errors';
import type { AuthenticatedKey } from '../keys/types';
import { FieldGate, type Window } from './field-gate';
import type { Refusal } from './coalescing-gate';
import { SlicingError, fieldPoints, type FieldPolicy } from './field-policies';

export type FieldLimitContext = { apiKey?: AuthenticatedKey };

/**
 * graphql-rate-limit-directive owns the SDL contract and the resolver wrapping; we plug our
 * decisions into its extension points:
 *  - keyGenerator: key id + schema coordinate (its default is the field name alone, global);
 *  - pointsCalculator: @cost weight × @listSize slicing argument, whole numbers;
 *  - limiterClass: an adapter that hands each consume to FieldGate, which knows every window of
 *    the field (the library reads only the first @rateLimit) and the key's own overrides;
 *  - onLimit: a RATE_LIMITED error with the window's numbers (its default is a bare message).
 */
export function applyRateLimitDirective(schema: GraphQLSchema, options: {
  gate: FieldGate;
  policies: ReadonlyMap<string, FieldPolicy>;
  /** Told about every refused resolution (metrics, access log). */
  onRejected?: (coordinate: string, context: FieldLimitContext) => void;
}): { schema: GraphQLSchema; rememberKey(key: AuthenticatedKey): void } {
  const { gate, policies } = options;
  // Keys with per-coordinate overrides, as last authenticated (refreshed with the key cache).
  const overrides = new LRUCache<string, AuthenticatedKey['limits']>({ max: 100_000 });

  const windowsFor = (keyId: string, coordinate: string): readonly Window[] =>
    overrides.get(keyId)?.get(coordinate) ?? policies.get(coordinate)?.windows ?? [];

  // rate-limiter-flexible's extension point for custom limiters; the library only calls consume.
  class GateLimiter extends RateLimiterCompatibleAbstract {
    override readonly keyPrefix = 'tg:field';
    override consume(key: string | number, points = 1): Promise<RateLimiterRes> {
      const text = String(key);
      const split = text.indexOf(':');
      const keyId = text.slice(0, split);
      const coordinate = text.slice(split + 1);
      return gate.consume(keyId, coordinate, windowsFor(keyId, coordinate), points) as Promise<never>;
    }
  }

  const { rateLimitDirectiveTransformer } = rateLimitDirective<FieldLimitContext, IRateLimiterOptions>({
    limiterClass: GateLimiter as unknown as typeof RateLimiterAbstract,
    keyGenerator: (_args, _source, _fieldArgs, context, info) => {
      // Unauthenticated requests never reach resolvers; this guards direct schema use.
      if (!context.apiKey) throw new ApiError(ErrorCode.UNAUTHENTICATED, 'An API key is required.');
      return FieldGate.storeKey(context.apiKey.id, `${info.parentType.name}.${info.fieldName}`);
    },
    pointsCalculator: (_args, _source, fieldArgs, context, info) => {
      const coordinate = `${info.parentType.name}.${info.fieldName}`;
      const policy = policies.get(coordinate);
      if (!policy) return 1;
      let points: number;
      try {
        points = fieldPoints(policy, fieldArgs);
      } catch (error) {
        if (error instanceof SlicingError) throw badUserInput(error.message, error.argument);
        throw error;
      }
      // A request no window could ever admit is a bad request, not a reason to spend a budget.
      const smallest = Math.min(...windowsFor(context.apiKey?.id ?? '', coordinate).map((w) => w.limit));
      if (points > smallest) {
        throw badUserInput(`${policy.coordinate} asks for ${points} points here, but its budget is ${smallest} points per window.`);
      }
      return points;
    },
    onLimit: (response, _args, _source, _fieldArgs, context, info) => {
      const refusal = response as Refusal;
      const coordinate = `${info.parentType.name}.${info.fieldName}`;
      options.onRejected?.(coordinate, context);
      throw new ApiError(ErrorCode.RATE_LIMITED, `Too many requests for ${coordinate}; retry in ${Math.max(1, Math.ceil(refusal.msBeforeNext / 1000))} s.`, {
        coordinate,
        ...limitExtensions({ limit: refusal.window.limit, duration: refusal.window.duration, remaining: 0, msBeforeNext: refusal.msBeforeNext }),
      });
    },
  });

  return {
    schema: rateLimitDirectiveTransformer(schema),
    rememberKey(key) {
      if (key.limits.size > 0) overrides.set(key.id, key.limits);
      else if (overrides.has(key.id)) overrides.delete(key.id);
    },
  };
}
