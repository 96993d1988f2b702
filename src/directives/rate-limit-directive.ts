import { MapperKind, mapSchema } from '@graphql-tools/utils';
import { defaultFieldResolver, getArgumentValues, getNamedType, isObjectType, type GraphQLFieldResolver, type GraphQLResolveInfo, type GraphQLField, type GraphQLObjectType, type GraphQLSchema } from 'graphql';
import type { FieldGroup } from '../document/collect-fields';
import { argumentsCost, costWeights } from '../document/operation-cost';
import { rateLimitDirective } from 'graphql-rate-limit-directive';
import { RateLimiterCompatibleAbstract, RateLimiterRes, type IRateLimiterOptions, type RateLimiterAbstract } from 'rate-limiter-flexible';
import { LRUCache } from 'lru-cache';
import { ApiError, ErrorCode, badUserInput, limitExtensions, rateLimited as rateLimitedError } from '../errors';
import type { AuthenticatedKey } from '../keys/types';
import { FieldGate, type Window } from '../limits/field-gate';
import type { GroupOutcome } from '../limits/take';
import { verdict, type Refusal } from '../limits/window-gate';
import { SlicingError, fieldPoints, type FieldPolicy } from './field-policies';

const CHARGES = Symbol('tollgate.fieldCharges');

/** Points one resolution took from a field's windows (given back if the resolver refuses its input). */
export type FieldCharge = { coordinate: string; windows: readonly Window[]; points: number };

/**
 * What the field gate reads from a resolver's context: the key, and from the request's
 * admission the root fields whose budget was already taken with the operation's (see precharge).
 */
export type FieldLimitContext = { apiKey?: AuthenticatedKey; admission?: { prepaid?: Map<string, PrepaidCharge>; meta: { gates?: string[] } } };

/** A limited root field decided in the operation's take: what it asked for and what the take said. */
export type PrepaidCharge = { charge: PlannedCharge; outcome: GroupOutcome };

/** A limited root field's charge, planned before execution (see precharge), by its response key. */
export type PlannedCharge = FieldCharge & { responseKey: string };

export type RootFieldPrecharge = (apiKey: AuthenticatedKey, rootType: GraphQLObjectType, fields: readonly FieldGroup[], variables: Record<string, unknown>) => PlannedCharge[];

/**
 * graphql-rate-limit-directive owns the SDL contract and wraps every limited resolver that is
 * charged when it resolves (a root field is charged with the operation; see limitFields); we
 * plug our decisions into its extension points:
 *  - keyGenerator: key id + schema coordinate (its default is the field name alone, global);
 *  - pointsCalculator: @cost weight × @listSize slicing argument, whole numbers;
 *  - limiterClass: an adapter that hands each consume to FieldGate, which knows every window of
 *    the field (the library reads only the first @rateLimit) and the key's own overrides;
 *  - onLimit: a RATE_LIMITED error with the window's numbers (its default is a bare message).
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
}): { schema: GraphQLSchema; rememberKey(key: AuthenticatedKey): void; precharge: RootFieldPrecharge } {
  const { gate, policies } = options;
  // What each resolution was charged, by its `info.path` (one object per resolution), so a
  // resolver that refuses its input (BAD_USER_INPUT) can give the points back. Kept on the
  // request's context, not in a WeakMap: a long-lived WeakMap holds every young entry through
  // minor GCs until a full one (measured: most of the gates' GC time on the library bench).
  // (A prepaid root field's charge is on the admission instead.)
  const chargesOf = (context: FieldLimitContext) => ((context as { [CHARGES]?: Map<object, FieldCharge> })[CHARGES] ??= new Map());
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

  /** Points one resolution spends; throws BAD_USER_INPUT for absurd or never-admissible asks. */
  const pointsFor = (coordinate: string, fieldArgs: Record<string, unknown>, keyId: string, parent: GraphQLObjectType): number => {
    const policy = policies.get(coordinate);
    if (!policy) return 1;
    const field = parent.getFields()[coordinate.slice(parent.name.length + 1)];
    const named = getNamedType(field.type);
    let points: number;
    try {
      // The same weights as the operation budget: type weight, argument and input values.
      points = fieldPoints(policy, fieldArgs, {
        typeWeight: costWeights(schema).types.get(named.name),
        argumentsCost: argumentsCost(schema, parent.name, field as GraphQLField<unknown, unknown>, fieldArgs),
        defaultListSize: options.defaultListSize,
      });
    } catch (error) {
      if (error instanceof SlicingError) throw badUserInput(error.message, error.argument);
      throw error;
    }
    // A request no window could ever admit is a bad request, not a reason to spend a budget.
    let smallest = Infinity;
    for (const window of windowsFor(keyId, coordinate)) smallest = Math.min(smallest, window.limit);
    if (points > smallest) {
      throw badUserInput(`${coordinate} asks for ${points} points here, but its budget is ${smallest} points per window.`);
    }
    return points;
  };

  const rateLimited = (refusal: Refusal, coordinate: string, context: FieldLimitContext) => {
    options.onRejected?.(coordinate);
    if (context.admission) (context.admission.meta.gates ??= []).push(`field:${coordinate}`);
    const ext = limitExtensions({ limit: refusal.window.limit, duration: refusal.window.duration, remaining: 0, msBeforeNext: refusal.msBeforeNext });
    return rateLimitedError(`Too many requests for ${coordinate}; retry in ${ext.retryAfter} s.`, { coordinate, ...ext }, 'field');
  };

  const { rateLimitDirectiveTransformer } = rateLimitDirective<FieldLimitContext, IRateLimiterOptions>({
    limiterClass: GateLimiter as unknown as typeof RateLimiterAbstract,
    keyGenerator: (_args, _source, _fieldArgs, context, info) => {
      // Unauthenticated requests never reach resolvers; this guards direct schema use.
      if (!context.apiKey) throw new ApiError(ErrorCode.UNAUTHENTICATED, 'An API key is required.');
      // key id and coordinate, split again by GateLimiter (FieldGate forms the counter key).
      return `${context.apiKey.id}:${info.parentType.name}.${info.fieldName}`;
    },
    pointsCalculator: (_args, _source, fieldArgs, context, info) => {
      const coordinate = `${info.parentType.name}.${info.fieldName}`;
      const keyId = context.apiKey?.id ?? '';
      const points = pointsFor(coordinate, fieldArgs, keyId, info.parentType);
      chargesOf(context).set(info.path, { coordinate, windows: windowsFor(keyId, coordinate), points });
      return points;
    },
    onLimit: (response, _args, _source, _fieldArgs, context, info) => {
      throw rateLimited(response as Refusal, `${info.parentType.name}.${info.fieldName}`, context);
    },
  });

  /**
   * The budgets an operation's limited root fields will take, so the operation gate can take them
   * in the same store take as the operation's own budget instead of one more round trip when
   * execution reaches them. Fields the caller lacks the scope for, or whose arguments are bad,
   * are left to the normal path (which refuses them without spending).
   */
  const precharge: RootFieldPrecharge = (key, rootType, fields, variables) => {
    const planned: PlannedCharge[] = [];
    for (const group of fields) {
      const field = group.definition;
      if (!field) continue;
      const coordinate = `${rootType.name}.${group.fieldName}`;
      const windows = windowsFor(key.id, coordinate);
      if (!windows.length) continue;
      if ((options.requiredScopes.get(coordinate) ?? []).some((s) => !key.scopes.includes(s))) continue;
      let points: number;
      try {
        points = pointsFor(coordinate, field.args.length ? getArgumentValues(field, group.nodes[0], variables) : NO_ARGUMENTS, key.id, rootType);
      } catch {
        continue;
      }
      if (points > 0) planned.push({ responseKey: group.responseKey, coordinate, windows, points });
    }
    return planned;
  };

  /** A root field decided in the operation's take: throws its RATE_LIMITED if the take refused it. */
  const admitted = (prepaid: PrepaidCharge, context: FieldLimitContext) => {
    if (prepaid.outcome.ok) return;
    try {
      verdict(prepaid.outcome, prepaid.charge.windows);
    } catch (refusal) {
      throw refusal instanceof RateLimiterRes ? rateLimited(refusal as Refusal, prepaid.charge.coordinate, context) : refusal;
    }
  };

  /**
   * Outermost wrapper of every limited field (inside @requireScopes):
   *  - a root field already decided with the operation (prepaid) has nothing left to charge, so it
   *    runs the owner's resolver directly; the library's wrapper would only charge 0 — and it is a
   *    down-compiled generator, which on Node 20 keeps each request's objects alive past a minor GC
   *    (measured in process: 5× the bytes promoted per minor GC, a quarter of the throughput);
   *  - a resolver that refuses its input (BAD_USER_INPUT) or its caller (FORBIDDEN) did no work, so
   *    the points this resolution took go back to every window. A refusal costs nothing.
   */
  const limitFields = (limited: GraphQLSchema, owners: ReadonlyMap<string, GraphQLFieldResolver<unknown, unknown>>) =>
    mapSchema(limited, {
      [MapperKind.OBJECT_FIELD]: (field, fieldName, typeName) => {
        const coordinate = `${typeName}.${fieldName}`;
        if (!policies.get(coordinate)?.windows.length || !field.resolve) return field;
        const charged = field.resolve; // the library's wrapper: charges this resolution
        const own = owners.get(coordinate) ?? defaultFieldResolver;
        const refund = async (error: unknown, context: FieldLimitContext, info: GraphQLResolveInfo): Promise<never> => {
          const prepaid = prepaidOf(context, info);
          const charge = chargesOf(context).get(info.path) ?? (prepaid?.outcome.ok ? prepaid.charge : undefined);
          const code = (error as { extensions?: { code?: unknown } }).extensions?.code;
          if (charge && charge.points > 0 && context.apiKey && (code === ErrorCode.BAD_USER_INPUT || code === ErrorCode.FORBIDDEN)) {
            await gate.release(context.apiKey.id, charge.coordinate, charge.windows, charge.points);
          }
          throw error;
        };
        return {
          ...field,
          // Not an async function: a resolver that succeeds costs no extra promise.
          resolve: (source, args, context: FieldLimitContext, info) => {
            try {
              const prepaid = prepaidOf(context, info);
              if (prepaid) admitted(prepaid, context);
              const result = (prepaid ? own : charged)(source, args, context, info);
              // then(_, onRejected), not catch: an owner's resolver may return any thenable.
              return isPromise(result) ? result.then(undefined, (error: unknown) => refund(error, context, info)) : result;
            } catch (error) {
              return refund(error, context, info);
            }
          },
        };
      },
    });

  return {
    schema: limitFields(rateLimitDirectiveTransformer(schema), ownResolvers(schema)),
    precharge,
    rememberKey(key) {
      if (key.limits.size > 0) overrides.set(key.id, key.limits);
      else if (overrides.has(key.id)) overrides.delete(key.id);
    },
  };
}

const NO_ARGUMENTS: Record<string, unknown> = Object.freeze({});

/** A root field's charge taken with the operation's budget, found by its response key. */
function prepaidOf(context: FieldLimitContext, info: GraphQLResolveInfo): PrepaidCharge | undefined {
  return info.path.prev === undefined ? context.admission?.prepaid?.get(info.path.key as string) : undefined;
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
