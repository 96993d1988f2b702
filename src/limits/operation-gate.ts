import type { ApolloServerPlugin, GraphQLRequestContextDidResolveOperation } from '@apollo/server';
import {
  Kind, execute, getVariableValues, type DocumentNode, type FieldNode, type FragmentDefinitionNode, type OperationDefinitionNode,
} from 'graphql';
import { RateLimiterRes } from 'rate-limiter-flexible';
import { ApiError, ErrorCode, badUserInput, limitExtensions, replaceWithError } from '../errors';
import { CoalescingGate, Refusal } from './coalescing-gate';
import type { Context } from '../context';
import { SlicingError, type FieldPolicy } from './field-policies';
import { actualCost, included, requestedCost, type CostInput } from './operation-cost';
import type { RootFieldPrecharge } from './rate-limit-directive';
import type { LimiterStore } from './store';

export type OperationGateOptions = {
  store: LimiterStore;
  policies: ReadonlyMap<string, FieldPolicy>;
  mode: 'enforce' | 'measure';
  maxCost: number;
  defaultBudget: { points: number; duration: number };
  /** Takes limited root fields' budgets in the same round trip as the operation's. */
  precharge?: RootFieldPrecharge | null;
  /** Told about every operation's requested cost and every refusal (metrics). */
  onCost?: (points: number) => void;
  onRejected?: () => void;
};

/** The free status field: never counted, and with dryRun the only thing executed. */
const STATUS_FIELD = 'rateLimit';
const FREE_ROOT_FIELDS = new Set([STATUS_FIELD]);

/**
 * The operation gate. After validation and before any resolver, the operation's cost is
 * computed from the document and taken from the key's points budget in ONE limiter call; over
 * budget → 429 with nothing executed. After execution the difference between requested and
 * actual cost (lists shorter than asked for) is given back. Every authenticated response says
 * where the key stands: RateLimit headers and extensions.cost.
 */
export function operationGatePlugin(options: OperationGateOptions): ApolloServerPlugin<Context> {
  const { mode } = options;
  const gate = new CoalescingGate(options.store, 'tg:budget');
  const budgetOf = (ctx: Context) => {
    const budget = ctx.apiKey.budget ?? options.defaultBudget;
    return { limit: budget.points, duration: budget.duration };
  };

  /** Records where the key stands: from a limiter read (`res`, null when nothing is spent yet) or a gate answer. */
  const record = (ctx: Context, state: { remaining: number; msBeforeNext: number } | RateLimiterRes | null) => {
    const budget = budgetOf(ctx);
    ctx.cost.limit = budget.limit;
    ctx.cost.window = budget.duration;
    if (state instanceof RateLimiterRes && !(state instanceof Refusal)) {
      ctx.cost.remaining = Math.max(0, budget.limit - state.consumedPoints);
    } else if (state) {
      ctx.cost.remaining = state instanceof Refusal ? state.remainingPoints : state.remaining;
    } else {
      ctx.cost.remaining = budget.limit;
    }
    ctx.cost.resetAt = new Date(Date.now() + (state ? state.msBeforeNext : budget.duration * 1000));
  };

  const costInput = (rc: GraphQLRequestContextDidResolveOperation<Context>): CostInput => {
    const operation = rc.operation as OperationDefinitionNode;
    const coerced = getVariableValues(rc.schema, operation.variableDefinitions ?? [], rc.request.variables ?? {}, { maxErrors: 5 });
    // Apollo coerces variables only when it executes; bad ones must be the client's 400, not our crash.
    if (coerced.errors) {
      throw new ApiError(ErrorCode.BAD_USER_INPUT, coerced.errors.map((e) => e.message).join(' '), {}, 400);
    }
    return {
      schema: rc.schema,
      operation,
      fragments: fragmentsOf(rc.document),
      variables: coerced.coerced ?? {},
      policies: options.policies,
      skipRootFields: FREE_ROOT_FIELDS,
    };
  };

  return {
    async requestDidStart() {
      let input: CostInput | undefined;
      return {
        async didResolveOperation(rc) {
          const ctx = rc.contextValue;
          if (!rc.operation) return; // no such operation: Apollo answers 400 itself
          if (rc.operation.operation === 'subscription') {
            throw new ApiError(ErrorCode.BAD_REQUEST, 'Subscriptions are not supported by this API.', {}, 400);
          }
          const operationInput = costInput(rc);
          input = operationInput;
          let cost: number;
          try {
            cost = requestedCost(input);
          } catch (error) {
            if (error instanceof SlicingError) throw withStatus(badUserInput(error.message, error.argument), 400);
            throw error;
          }
          ctx.cost.requested = cost;
          ctx.meta.cost = cost;
          options.onCost?.(cost);
          ctx.cost.dryRun = isDryRun(input.operation, input.variables);
          const budget = budgetOf(ctx);

          if (ctx.cost.dryRun || cost === 0) {
            const [ip, res] = await Promise.all([ctx.ipCheck(), gate.limiterFor(budget).get(ctx.apiKey.id).catch(() => null)]);
            if (!ip.ok) throw ctx.ipRefusal(ip);
            return record(ctx, res);
          }
          if (cost > options.maxCost && mode === 'enforce') {
            options.onRejected?.();
            (ctx.meta.gates ??= []).push('operation:too-complex');
            throw new ApiError(ErrorCode.QUERY_TOO_COMPLEX, `This operation costs ${cost} points; the most one operation may cost is ${options.maxCost}.`, { cost, maxCost: options.maxCost }, 400);
          }
          const started = performance.now();
          // The IP verdict, the key's budget and its root fields' budgets are decided in the same
          // turn: one round trip on Redis.
          const rootType = operationInput.operation.operation === 'mutation' ? rc.schema.getMutationType() : rc.schema.getQueryType();
          const rootFields = operationInput.operation.selectionSet.selections.filter((s): s is FieldNode => s.kind === Kind.FIELD && included(s, operationInput.variables));
          const prepaid = rootType && options.precharge ? options.precharge(ctx, rootType, rootFields, operationInput.variables) : null;
          const [ip, charge] = await Promise.all([
            ctx.ipCheck(),
            gate.consume(ctx.apiKey.id, [budget], cost).then((admission) => ({ admission }), (thrown: unknown) => ({ thrown })),
          ]);
          try {
            if (!ip.ok) {
              // Refused for its address: the key keeps its points.
              if ('admission' in charge) await gate.limiterFor(budget).reward(ctx.apiKey.id, cost).catch(() => undefined);
              await prepaid?.release();
              throw ctx.ipRefusal(ip);
            }
            if ('admission' in charge) {
              record(ctx, charge.admission);
              ctx.cost.charged = cost;
              return;
            }
            const refusal = charge.thrown;
            if (!(refusal instanceof Refusal)) {
              await prepaid?.release();
              throw refusal; // closed store: SERVICE_UNAVAILABLE
            }
            // The gate already gave the points back: a refused operation spends nothing.
            record(ctx, refusal);
            if (mode === 'measure') return; // reported in extensions.cost, never refused
            await prepaid?.release();
            options.onRejected?.();
            (ctx.meta.gates ??= []).push('operation');
            const ext = limitExtensions({ limit: budget.limit, duration: budget.duration, remaining: refusal.remainingPoints, msBeforeNext: refusal.msBeforeNext });
            throw new ApiError(
              ErrorCode.RATE_LIMITED,
              `This operation costs ${cost} points and ${refusal.remainingPoints} of ${budget.limit} remain in this ${budget.duration}-second window; retry in ${ext.retryAfter} s.`,
              { gate: 'operation', cost, ...ext },
              429,
              { 'retry-after': String(ext.retryAfter) },
            );
          } finally {
            ctx.meta.budgetStoreMs = Math.round((performance.now() - started) * 100) / 100;
          }
        },

        async responseForOperation(rc) {
          if (!rc.contextValue.cost.dryRun) return null;
          // dryRun: cost everything, execute only the status field, charge nothing.
          const document = onlyStatusFields(rc.document, rc.operation as OperationDefinitionNode);
          const result = await execute({ schema: rc.schema, document, contextValue: rc.contextValue, variableValues: rc.request.variables });
          return { http: rc.response.http, body: { kind: 'single', singleResult: { data: result.data, errors: result.errors?.map((e) => e.toJSON()) } } };
        },

        async willSendResponse(rc) {
          const ctx = rc.contextValue;
          if (!ctx.apiKey || rc.response.body.kind !== 'single') return;
          // Operations refused before this gate (parse, validation) still count for their address.
          const ip = await ctx.ipCheck();
          if (!ip.ok && rc.response.http.status !== 429) {
            replaceWithError(rc.response, ctx.ipRefusal(ip));
            return;
          }
          const single = rc.response.body.singleResult;
          const budget = budgetOf(ctx);
          if (ctx.cost.remaining === undefined) record(ctx, await gate.limiterFor(budget).get(ctx.apiKey.id).catch(() => null));
          // Refund what was not returned (shorter lists, nulls).
          if (ctx.cost.charged && input && single.data !== undefined) {
            ctx.cost.actual = Math.min(ctx.cost.charged, actualCost(input, single.data, refusedPaths(single.errors)));
            const refund = ctx.cost.charged - ctx.cost.actual;
            if (refund > 0) {
              const after = await gate.limiterFor(budget).reward(ctx.apiKey.id, refund).catch(() => null);
              if (after) record(ctx, after);
            }
          }
          const requested = ctx.cost.requested ?? 0;
          single.extensions = {
            ...single.extensions,
            cost: {
              requestedQueryCost: requested,
              actualQueryCost: ctx.cost.actual ?? (ctx.cost.charged ? requested : 0),
              throttleStatus: {
                maximumAvailable: ctx.cost.limit,
                currentlyAvailable: ctx.cost.remaining,
                resetAt: ctx.cost.resetAt?.toISOString(),
              },
            },
          };
          const secondsToReset = Math.max(0, Math.ceil(((ctx.cost.resetAt?.getTime() ?? Date.now()) - Date.now()) / 1000));
          rc.response.http.headers.set('ratelimit-policy', `"budget";q=${budget.limit};w=${budget.duration}`);
          rc.response.http.headers.set('ratelimit', `"budget";r=${ctx.cost.remaining};t=${secondsToReset}`);
        },
      };
    },
  };
}

function withStatus(error: ApiError, status: number) {
  (error.extensions as Record<string, unknown>).http = { status };
  return error;
}

function fragmentsOf(document: DocumentNode): Record<string, FragmentDefinitionNode> {
  const fragments: Record<string, FragmentDefinitionNode> = {};
  for (const d of document.definitions) if (d.kind === Kind.FRAGMENT_DEFINITION) fragments[d.name.value] = d;
  return fragments;
}

function statusFields(operation: OperationDefinitionNode): FieldNode[] {
  return operation.selectionSet.selections.filter((s): s is FieldNode => s.kind === Kind.FIELD && s.name.value === STATUS_FIELD);
}

function isDryRun(operation: OperationDefinitionNode, variables: Record<string, unknown>): boolean {
  if (operation.operation !== 'query') return false;
  return statusFields(operation).some((field) => {
    const arg = field.arguments?.find((a) => a.name.value === 'dryRun')?.value;
    if (!arg) return false;
    if (arg.kind === Kind.BOOLEAN) return arg.value;
    return arg.kind === Kind.VARIABLE && variables[arg.name.value] === true;
  });
}

/** The operation with only its status fields, so a dry run executes nothing else. */
function onlyStatusFields(document: DocumentNode, operation: OperationDefinitionNode): DocumentNode {
  return {
    kind: Kind.DOCUMENT,
    // fragments stay: the status field's own selection may spread one
    definitions: [{ ...operation, selectionSet: { ...operation.selectionSet, selections: statusFields(operation) } }, ...Object.values(fragmentsOf(document))],
  };
}

/** Codes of refusals that happen before a field does any work: they cost nothing. */
const FREE_REFUSALS = new Set<unknown>([ErrorCode.BAD_USER_INPUT, ErrorCode.FORBIDDEN]);

function refusedPaths(errors: readonly { path?: readonly (string | number)[]; extensions?: Record<string, unknown> }[] | undefined): Set<string> | undefined {
  if (!errors?.length) return undefined;
  return new Set(errors.filter((e) => e.path && FREE_REFUSALS.has(e.extensions?.code)).map((e) => e.path!.join('.')));
}
