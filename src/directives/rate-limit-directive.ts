import { MapperKind, mapSchema } from '@graphql-tools/utils';
import { defaultFieldResolver, isObjectType, type GraphQLFieldResolver, type GraphQLResolveInfo, type GraphQLSchema } from 'graphql';
import { rateLimitDirective } from 'graphql-rate-limit-directive';
import { RateLimiterCompatibleAbstract, RateLimiterRes, type IRateLimiterOptions, type RateLimiterAbstract } from 'rate-limiter-flexible';
import { ApiError, ErrorCode, FREE_REFUSALS, limitExtensions, rateLimited } from '../errors';
import type { AuthenticatedKey } from '../keys/types';
import type { FieldGate, Window } from '../gates/field-gate';
import { verdict, type Refusal, type Taken } from '../counting/window-gate';
import type { FieldPolicy } from './field-policies';
import { FieldLimits } from './field-limits';
import { prepaidOf, prepayRootFields, type Prepaid, type PrepaidContext, type PrepayRootFields } from './prepay';

export type { Prepaid, PrepaidField, PrepayRootFields } from './prepay';

const CHARGES = Symbol('tollgate.fieldCharges');

/** Points one resolution took from a field's windows (given back if the resolver refuses its input, to the buckets they came from). */
export type FieldCharge = { coordinate: string; windows: readonly Window[]; points: number; buckets?: readonly number[]; released?: boolean };

/** What GateLimiter answers an admitted consume with: the library hands it to setState, which keeps the windows' ends. */
class Admitted extends RateLimiterRes {
  constructor(readonly taken: Taken) {
    super(taken.remaining, taken.msBeforeNext, taken.window.limit - taken.remaining, true);
  }
}

/** What the field gate reads from a resolver's context: the key, prepaid root fields, the request's log facts. */
export type FieldLimitContext = PrepaidContext & { apiKey?: AuthenticatedKey; admission?: { meta: { gates?: string[] } } };

/**
 * The field gate (@rateLimit), in three layers:
 *  1. graphql-rate-limit-directive owns the SDL contract and charges a limited field when it
 *     resolves; we plug our decisions into its extension points (chargeOnResolve);
 *  2. root fields were prepaid with the operation (prepay.ts): they skip layer 1;
 *  3. a resolver that refuses its input or caller gives its points back (resolveOrRefund).
 * FieldLimits says which windows and how many points; FieldGate counts.
 */
export function applyRateLimitDirective(schema: GraphQLSchema, options: {
  gate: FieldGate;
  policies: ReadonlyMap<string, FieldPolicy>;
  /** Scopes each coordinate needs (@requireScopes): a caller without them is never charged. */
  requiredScopes: ReadonlyMap<string, readonly string[]>;
  /** Told about every refused resolution (metrics, access log). */
  onRejected?: (coordinate: string) => void;
  /** The size of a list nothing else sizes (DEFAULT_LIST_SIZE). */
  defaultListSize?: number;
}): { schema: GraphQLSchema; rememberKey(key: AuthenticatedKey): void; prepay: PrepayRootFields } {
  const limits = new FieldLimits(schema, options.policies, options.defaultListSize);
  const refusal = (refused: Refusal, coordinate: string, context: FieldLimitContext, asked: number | undefined) => {
    options.onRejected?.(coordinate);
    if (context.admission) (context.admission.meta.gates ??= []).push(`field:${coordinate}`);
    // What is left in the window that said no, and what this call asked of it.
    const ext = limitExtensions({ limit: refused.window.limit, duration: refused.window.duration, remaining: refused.remainingPoints, msBeforeNext: refused.msBeforeNext });
    const message = asked === undefined
      ? `Too many requests for ${coordinate}; retry in ${ext.retryAfter} s.`
      : `${coordinate} asks for ${asked} points and ${ext.remaining} of ${ext.limit} remain in this ${refused.window.duration}-second window; retry in ${ext.retryAfter} s.`;
    return rateLimited(message, { coordinate, ...(asked === undefined ? {} : { cost: asked }), ...ext }, 'field');
  };
  const charged = chargeOnResolve(schema, limits, options.gate, refusal);
  return {
    schema: resolveOrRefund(charged, ownResolvers(schema), limits, options.gate, refusal),
    prepay: prepayRootFields(limits, options.requiredScopes),
    rememberKey: (key) => limits.rememberKey(key),
  };
}

/** The charges of an operation's resolutions, if any field was charged (the usage history reads them). */
export function fieldChargesIn(context: object): Iterable<FieldCharge> | undefined {
  return (context as { [CHARGES]?: Map<object, FieldCharge> })[CHARGES]?.values();
}

/** What each resolution was charged, by its `info.path`, kept on the request's context. */
function chargesOf(context: FieldLimitContext): Map<object, FieldCharge> {
  // Not a long-lived WeakMap: it holds every young entry through minor GCs until a full one
  // (measured: most of the gates' GC time on the library bench).
  return ((context as { [CHARGES]?: Map<object, FieldCharge> })[CHARGES] ??= new Map());
}

type RefusalError = (refused: Refusal, coordinate: string, context: FieldLimitContext, asked: number | undefined) => Error;

/**
 * Layer 1: the library's directive transformer, with our extension points —
 *  - keyGenerator: key id + schema coordinate (its default is the field name alone, global);
 *  - pointsCalculator: @cost weight × @listSize slicing argument, whole numbers;
 *  - limiterClass: an adapter that hands each consume to FieldGate, which knows every window of
 *    the field (the library reads only the first @rateLimit) and the key's own overrides;
 *  - onLimit: a RATE_LIMITED error with the window's numbers (its default is a bare message).
 */
function chargeOnResolve(schema: GraphQLSchema, limits: FieldLimits, gate: FieldGate, refusal: RefusalError): GraphQLSchema {
  // rate-limiter-flexible's extension point for custom limiters; the library only calls consume.
  class GateLimiter extends RateLimiterCompatibleAbstract {
    override readonly keyPrefix = 'tg:field';
    override consume(key: string | number, points = 1): Promise<RateLimiterRes> {
      // owner:keyId:coordinate (ids are UUIDs, without colons)
      const text = String(key);
      const first = text.indexOf(':');
      const second = text.indexOf(':', first + 1);
      const identity = { owner: text.slice(0, first), id: text.slice(first + 1, second) };
      const coordinate = text.slice(second + 1);
      return gate.consume(identity, coordinate, limits.windowsFor(identity.id, coordinate), points).then((taken) => new Admitted(taken));
    }
  }
  const { rateLimitDirectiveTransformer } = rateLimitDirective<FieldLimitContext, IRateLimiterOptions>({
    limiterClass: GateLimiter as unknown as typeof RateLimiterAbstract,
    keyGenerator: (_args, _source, _fieldArgs, context, info) => {
      // Unauthenticated requests never reach resolvers; this guards direct schema use.
      if (!context.apiKey) throw new ApiError(ErrorCode.UNAUTHENTICATED, 'An API key is required.');
      // owner, key id and coordinate, split again by GateLimiter (FieldGate forms the counter keys).
      return `${context.apiKey.owner}:${context.apiKey.id}:${info.parentType.name}.${info.fieldName}`;
    },
    pointsCalculator: (_args, _source, fieldArgs, context, info) => {
      const coordinate = `${info.parentType.name}.${info.fieldName}`;
      const keyId = context.apiKey?.id ?? '';
      const points = limits.pointsFor(coordinate, fieldArgs, keyId, info.parentType);
      chargesOf(context).set(info.path, { coordinate, windows: limits.windowsFor(keyId, coordinate), points });
      return points;
    },
    setState: (response, _args, _source, _fieldArgs, context, info) => {
      if (!(response instanceof Admitted)) return;
      const charge = chargesOf(context).get(info.path);
      if (charge) charge.buckets = response.taken.buckets;
    },
    onLimit: (response, _args, _source, _fieldArgs, context, info) => {
      throw refusal(response as Refusal, `${info.parentType.name}.${info.fieldName}`, context, chargesOf(context).get(info.path)?.points);
    },
  });
  return rateLimitDirectiveTransformer(schema);
}

/**
 * Layers 2 and 3, the outermost wrapper of every limited field (inside @requireScopes):
 *  - a prepaid root field has nothing left to charge, so it runs the owner's resolver directly;
 *    the library's wrapper would only charge 0 — and it is a down-compiled generator, which on
 *    Node 20 keeps each request's objects alive past a minor GC (measured in process: 5× the
 *    bytes promoted per minor GC, a quarter of the throughput);
 *  - a resolver that refuses its input (BAD_USER_INPUT) or its caller (FORBIDDEN) did no work, so
 *    the points this resolution took go back to every window. A refusal costs nothing.
 */
function resolveOrRefund(charged: GraphQLSchema, owners: ReadonlyMap<string, GraphQLFieldResolver<unknown, unknown>>, limits: FieldLimits, gate: FieldGate, refusal: RefusalError): GraphQLSchema {
  /** A prepaid root field: throws its RATE_LIMITED if the take refused it. */
  const admitted = (prepaid: Prepaid, context: FieldLimitContext) => {
    if (prepaid.outcome.ok) return;
    try {
      verdict(prepaid.outcome, prepaid.field.windows, prepaid.field.points);
    } catch (refused) {
      throw refused instanceof RateLimiterRes ? refusal(refused as Refusal, prepaid.field.coordinate, context, prepaid.field.points) : refused;
    }
  };
  const refund = async (error: unknown, context: FieldLimitContext, info: GraphQLResolveInfo): Promise<never> => {
    const prepaid = prepaidOf(context, info);
    const charge: FieldCharge | undefined = chargesOf(context).get(info.path) ?? (prepaid?.outcome.ok ? { ...prepaid.field, buckets: prepaid.buckets } : undefined);
    const code = (error as { extensions?: { code?: unknown } }).extensions?.code;
    if (charge?.buckets && charge.points > 0 && context.apiKey && FREE_REFUSALS.has(code)) {
      charge.released = true;
      if (prepaid) prepaid.released = true;
      await gate.release(context.apiKey, charge.coordinate, charge.windows, charge.points, charge.buckets);
    }
    throw error;
  };
  return mapSchema(charged, {
    [MapperKind.OBJECT_FIELD]: (field, fieldName, typeName) => {
      const coordinate = `${typeName}.${fieldName}`;
      if (!limits.policies.get(coordinate)?.windows.length || !field.resolve) return field;
      const chargeThenResolve = field.resolve; // the library's wrapper: charges this resolution
      const own = owners.get(coordinate) ?? defaultFieldResolver;
      return {
        ...field,
        // Not an async function: a resolver that succeeds costs no extra promise.
        resolve: (source, args, context: FieldLimitContext, info) => {
          try {
            const prepaid = prepaidOf(context, info);
            if (prepaid) admitted(prepaid, context);
            const result = (prepaid ? own : chargeThenResolve)(source, args, context, info);
            // then(_, onRejected), not catch: an owner's resolver may return any thenable.
            return isPromise(result) ? result.then(undefined, (error: unknown) => refund(error, context, info)) : result;
          } catch (error) {
            return refund(error, context, info);
          }
        },
      };
    },
  });
}

const isPromise = (value: unknown): value is PromiseLike<unknown> => typeof (value as { then?: unknown } | null)?.then === 'function';

/** Each field's resolver as the owner wrote it, by coordinate (before any directive wraps it). */
function ownResolvers(schema: GraphQLSchema): Map<string, GraphQLFieldResolver<unknown, unknown>> {
  const owners = new Map<string, GraphQLFieldResolver<unknown, unknown>>();
  for (const type of Object.values(schema.getTypeMap())) {
    if (!isObjectType(type)) continue;
    for (const field of Object.values(type.getFields())) if (field.resolve) owners.set(`${type.name}.${field.name}`, field.resolve);
  }
  return owners;
}
