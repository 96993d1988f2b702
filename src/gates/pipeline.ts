import type { IncomingHttpHeaders } from 'node:http';
import { getVariableValues, type DocumentNode, type GraphQLSchema, type OperationDefinitionNode } from 'graphql';
import { FREE_REFUSALS, badRequest, badUserInput, limitExtensions, rateLimited, serviceUnavailable, tooComplex, unauthenticated, withHttpStatus } from '../errors';
import type { AuthFailure, KeyAuthenticator } from '../keys/authenticator';
import type { AuthenticatedKey, KeyWindow } from '../keys/types';
import { budgetCounterKeys, type FieldGate } from './field-gate';
import { SlicingError, type FieldPolicy } from '../directives/field-policies';
import type { IpCheck, IpGate, IpVerdict } from './ip-gate';
import type { ConcurrencyGate, Slot } from './concurrency-gate';
import { DocumentTooComplex, type FieldGroup } from '../document/collect-fields';
import { analyseOperation, type OperationAnalysis } from '../document/operation-analysis';
import { actualCost, type CostRules } from '../document/operation-cost';
import type { Prepaid, PrepayRootFields } from '../directives/prepay';
import type { LimiterStore } from '../counting/store';
import type { CounterState, Group, GroupOutcome } from '../counting/take';
import { WindowGate, bucketsOf, retryAfterMs, type Window } from '../counting/window-gate';
import { rateLimitHeaders, type PolicyWindow, type RateLimitHeaderMode } from '../graphql/rate-limit-headers';

/** What the HTTP layer knows about a request, whatever server received it. */
export type RequestInfo = {
  requestId: string;
  ip: string;
  headers: IncomingHttpHeaders;
  /**
   * The HTTP response, where there is one: its `close` (answered, or the client gone) gives the
   * request's concurrency slot back. Without it the slot is given back when the operation is answered.
   */
  response?: { once(event: 'close', listener: () => void): unknown; destroyed?: boolean; writableFinished?: boolean };
};

/** Per-request facts for the access log and metrics, filled in as the request passes the gates. */
export type RequestMeta = {
  /** The client's address as the IP gate counts it (after TRUST_PROXY). */
  ip?: string;
  keyId?: string;
  /** Why the key gate refused the request (401, or 400 for two keys): never the key itself. */
  reason?: AuthFailure;
  operationName?: string | null;
  operationType?: string;
  /** Requested cost of the operation, in points. */
  cost?: number;
  /** Gates that refused something in this request (`ip`, `auth-failures`, `key`, `operation`, `field:Query.forecast`, …). */
  gates?: string[];
  /** How long the operation budget's store call took. */
  budgetStoreMs?: number;
};

/** A request's meta with every field named up front (an object that grows past four properties reallocates them). */
export function requestMeta(): RequestMeta {
  return { ip: undefined, keyId: undefined, reason: undefined, operationName: undefined, operationType: undefined, cost: undefined, gates: undefined, budgetStoreMs: undefined };
}

/** Where the key stands in its operation budget, as this request leaves it. */
export type CostState = {
  requested?: number;
  /** Points taken from the budget before execution (0 or unset: nothing taken). */
  prepaid?: number;
  actual?: number;
  remaining?: number;
  limit?: number;
  resetAt?: Date;
  window?: number;
  dryRun?: boolean;
  /** Every window of the budget (quotas and the key's caps included), as the last take or read left it. */
  windows?: WindowStanding[];
};

export type WindowStanding = { limit: number; window: number; period: string | null; used: number; remaining: number; resetAt: Date; owner: 'KEY' | 'CONSUMER' };

/** The schema-side facts the operation gate needs: each field's policy, and which root fields to prepay. */
export type SchemaGates = { policies: ReadonlyMap<string, FieldPolicy>; prepay: PrepayRootFields | null };

export type AdmissionOptions = {
  authenticator: KeyAuthenticator;
  ipGate: IpGate;
  fieldGate: FieldGate;
  store: LimiterStore;
  mode: 'enforce' | 'measure';
  maxCost: number;
  /** Steps one reading of a document may take (MAX_QUERY_STEPS); measuring a response may take ten times as many. */
  maxSteps: number;
  /** The operation budget of a key whose owner has none of its own: the main window, then the burst window. */
  defaultBudgets: readonly { points: number; duration: number }[];
  cost?: { defaultListSize: number; rules: CostRules };
  /** The form the RateLimit headers take (RATELIMIT_HEADERS; graphql/rate-limit-headers.ts). Default draft-8. */
  headers?: RateLimitHeaderMode;
  /** Told about refusals and costs (metrics). */
  onAuthFailure?: (reason: AuthFailure) => void;
  onRejected?: (gate: 'ip' | 'auth-failures' | 'operation' | 'concurrency') => void;
  /** MAX_CONCURRENT_PER_KEY's gate; null or absent: no limit, and no store call. */
  concurrency?: ConcurrencyGate | null;
  /** A known key refused before any operation ran (concurrency): its usage history counts the refusal. */
  onKeyRefused?: (key: AuthenticatedKey, error: Error) => void;
  onCost?: (points: number) => void;
  /** Where the key's budget windows stand after each take or read (alerts/watch.ts: usage thresholds). */
  onStanding?: (key: AuthenticatedKey, windows: readonly KeyWindow[], states: readonly (CounterState | null | undefined)[], refusedAt?: number) => void;
};

/**
 * The pipeline one request passes, in order — this file is where to read it:
 *
 *   1. IP gate      per-address request budget and failed-authentication block   (admit; ip-gate.ts)
 *   2. key gate     x-api-key / Bearer → format → cache → Postgres                 (admit; keys/authenticator.ts)
 *   3. operation    the document read once (document/), its cost taken from the    (chargeOperation)
 *                   key's budget in one store round trip together with the IP
 *                   verdict and the prepaid root fields; refused → 429, nothing runs
 *   4. fields       @rateLimit per key and coordinate while resolvers run           (directives/rate-limit-directive.ts)
 *   5. settle       refund what was not returned or was refused; report the budget  (settle, report)
 *
 * One Admission per operation: the context function creates the request's (steps 1–2), and each
 * operation of a batch takes its own (forOperation) for steps 3–5. The Tollgate plugin
 * (graphql/plugin.ts) calls them at the right moments of Apollo's pipeline. The IP verdict is
 * one state machine per request (ip-gate.ts, IpCheck): pending → decided, on its own or inside
 * the operation's take; every step asks it, none decides it twice. Errors are the named
 * constructors of errors.ts, so each carries its code and status.
 */
export class Admissions {
  private readonly budgets: WindowGate;

  /** The default budget's windows, made once (every request of a key without its own uses them). */
  readonly defaultWindows: readonly KeyWindow[];

  constructor(private readonly options: AdmissionOptions) {
    this.budgets = new WindowGate(options.store, 'tg:budget');
    this.defaultWindows = options.defaultBudgets.map((b) => ({ limit: b.points, duration: b.duration }));
  }

  /**
   * Where an owner's operation-budget windows stand (budgets, quotas, caps), read from the store
   * without spending and without telling the alert watch: what `rateLimit` reports to a key, for
   * the admin API (Consumer.windows).
   */
  standing(key: AuthenticatedKey): Promise<WindowStanding[]> {
    return new Admission(this, key, requestMeta(), null as unknown as IpCheck).readStanding();
  }

  /** Steps 1 and 2. Throws the request's refusal (401, 400, 429, 503). */
  async admit(request: RequestInfo, meta: RequestMeta = requestMeta()): Promise<Admission> {
    const { authenticator, ipGate } = this.options;
    // The IP gate's request budget is taken once per request, lazily: a key this instance has
    // already verified has it taken with its operation budget (one store take); anything else
    // (no key, a guess, a database lookup) waits for it here, with the failed-authentication block.
    meta.ip = request.ip;
    const ip = ipGate.check(request.ip);
    const guard = async () => {
      const verdict = await ip.guard();
      if (!verdict.ok) throw this.ipRefusal(verdict, meta);
    };
    let candidate: string | undefined;
    try {
      candidate = readKeyHeader(request.headers);
    } catch (headerError) {
      // A malformed Authorization or two keys: the address answers for it like for a bad key.
      await guard();
      this.options.onAuthFailure?.('malformed');
      keyRefused(meta, 'malformed');
      await ipGate.recordAuthFailure(request.ip);
      throw headerError;
    }
    if (!candidate) await guard();
    const result = await authenticator.authenticate(candidate, guard, { ip: request.ip, origin: request.headers.origin });
    if (!result.ok) {
      this.options.onAuthFailure?.(result.reason);
      keyRefused(meta, result.reason);
      if (result.reason !== 'missing') await ipGate.recordAuthFailure(request.ip);
      throw result.reason === 'missing'
        ? unauthenticated('An API key is required: send it in the x-api-key header.')
        : // One message for malformed, unknown, revoked and expired keys, and for a key used from
          // an address or origin it does not allow: no oracle for guessing, none for a stolen key.
          unauthenticated('The API key is not valid.');
    }
    meta.keyId = result.key.id;
    const admission = new Admission(this, result.key, meta, ip);
    const { concurrency } = this.options;
    if (concurrency) {
      // One slot per request, the key's or its consumer's (shared by its keys), on every instance.
      try {
        admission.slot = await concurrency.acquire(result.key.owner);
      } catch (error) {
        if ((error as { extensions?: { gate?: unknown } }).extensions?.gate === 'concurrency') {
          this.options.onRejected?.('concurrency');
          (meta.gates ??= []).push('concurrency');
        }
        this.options.onKeyRefused?.(result.key, error as Error);
        throw error;
      }
    }
    return admission;
  }

  /** The error for a refused address: 429 with Retry-After, or 503 when the store is down and closed. */
  ipRefusal(verdict: Exclude<IpVerdict, { ok: true }>, meta: RequestMeta) {
    const gate = verdict.reason === 'auth-failures' ? 'auth-failures' : 'ip';
    // Once per request: an operation refused at its take is asked again when it settles (and a
    // batch's operations share the request's verdict).
    if (!meta.gates?.includes(gate)) {
      this.options.onRejected?.(gate);
      (meta.gates ??= []).push(gate);
    }
    if (verdict.reason === 'store') return serviceUnavailable('Rate limiting is temporarily unavailable; try again shortly.');
    const ext = limitExtensions({ limit: verdict.limit, remaining: 0, msBeforeNext: verdict.msBeforeNext });
    const message = verdict.reason === 'auth-failures'
      ? `Too many failed authentications from this address; retry in ${ext.retryAfter} s.`
      : `Too many requests from this address; retry in ${ext.retryAfter} s.`;
    return rateLimited(message, { gate: verdict.reason === 'rate' ? 'ip' : 'auth-failures', ...ext });
  }

  /** @internal Shared by every Admission. */
  get gate() {
    return this.budgets;
  }
  /** @internal */
  get settings() {
    return this.options;
  }
}

/** One request's passage through the gates; see Admissions for the order. */
export class Admission {
  // Every field named up front: an object that grows past four properties reallocates them.
  readonly cost: CostState = { requested: undefined, prepaid: undefined, actual: undefined, remaining: undefined, limit: undefined, resetAt: undefined, window: undefined, dryRun: undefined };
  /** Limited root fields prepaid with the operation, by response key (directives/prepay.ts); read by the field gate. */
  prepaid?: Map<string, Prepaid>;
  /** The request's concurrency slot (MAX_CONCURRENT_PER_KEY), shared by the operations of a batch; null: no limit. */
  slot: Slot | null = null;
  private analysis?: OperationAnalysis;
  /** Whether an operation of this request has this admission already (a batch shares one request's context). */
  private taken = false;
  /** The budget's counters as the operation's take left them (before any refund). */
  private charged?: readonly (CounterState | null | undefined)[];
  /** The bucket each window's prepaid points came from: a refund goes back to them. */
  private prepaidBuckets: readonly number[] = [];
  /**
   * The operation budget's windows: the owner's (the key's, or its consumer's, shared by all the
   * consumer's keys), then the key's own caps under a consumer. All are taken or none.
   */
  private readonly windows: readonly KeyWindow[];
  /** The window the client is told about: the tightest after the last take or read. */
  private budget: Window;

  constructor(
    private readonly admissions: Admissions,
    readonly key: AuthenticatedKey,
    readonly meta: RequestMeta,
    private readonly ip: IpCheck,
  ) {
    const own = key.budgets ?? admissions?.defaultWindows ?? NO_BUDGET;
    this.windows = key.quotas.length || key.budgetCaps.length ? [...own, ...key.quotas, ...key.budgetCaps] : own;
    this.budget = this.windows[0];
  }

  /** Where the key's budget counters are: the owner's name, and the key's own for its caps. */
  private get counterKeys(): [owner: string, cap: string] {
    return budgetCounterKeys(this.key);
  }

  /** An admission through no gates at all: the bench's bare baseline. */
  static open(key: AuthenticatedKey, meta: RequestMeta): Admission {
    return new OpenAdmission(null as unknown as Admissions, key, meta, null as unknown as IpCheck);
  }

  /** The operation's status fields, as read by chargeOperation (a dry run executes only these). */
  get statusFields(): readonly FieldGroup[] {
    return this.analysis?.statusFields ?? [];
  }

  /**
   * The admission of one operation of this request. A batch runs several operations on one
   * request's context: each gets its own estimate, charge, dry-run flag and refund, sharing the
   * key, the IP verdict and the request's log facts. The first operation takes this one.
   */
  forOperation(): Admission {
    if (!this.taken) {
      this.taken = true;
      return this;
    }
    const next = new Admission(this.admissions, this.key, this.meta, this.ip);
    next.taken = true;
    next.slot = this.slot;
    return next;
  }

  /**
   * What the response really cost, read from the operation's collection. A response too large to
   * measure within ten times the step budget keeps what was prepaid (no refund), never walked further.
   */
  private measure(data: Record<string, unknown> | null, errors: Parameters<typeof refusedPaths>[0]): number {
    const input = this.analysis!.costInput;
    input.collection?.beginPass(this.admissions.settings.maxSteps * 10);
    try {
      return actualCost(input, data, refusedPaths(errors));
    } catch (error) {
      if (error instanceof DocumentTooComplex) return Infinity;
      throw error;
    }
  }

  private refused(gate: string) {
    (this.meta.gates ??= []).push(gate);
  }

  /**
   * Step 3. After validation, before any resolver: reads the operation once (document/), prices
   * it and takes that many points from the key's budget — in the same event-loop turn as the IP
   * verdict and the limited root fields' budgets, so on Redis they share one round trip. Throws
   * the refusal (400, 429, 503).
   */
  async chargeOperation(request: { schema: GraphQLSchema; document: DocumentNode; operation: OperationDefinitionNode; variables?: Record<string, unknown> }, gates: SchemaGates): Promise<void> {
    const { settings, gate } = this.admissions;
    const { operation, schema } = request;
    this.meta.operationType = operation.operation;
    if (operation.operation === 'subscription') throw badRequest('Subscriptions are not supported by this API.');
    // Apollo coerces variables only when it executes; bad ones must be the client's 400 here.
    let variables: Record<string, unknown> = NO_VARIABLES;
    if (operation.variableDefinitions?.length) {
      const coerced = getVariableValues(schema, operation.variableDefinitions, request.variables ?? {}, { maxErrors: 5 });
      if (coerced.errors) throw withHttpStatus(badUserInput(coerced.errors.map((e) => e.message).join(' ')), 400);
      variables = coerced.coerced;
    }
    let analysis: OperationAnalysis;
    try {
      analysis = analyseOperation({
        schema, document: request.document, operation, variables, policies: gates.policies,
        rules: settings.cost?.rules, defaultListSize: settings.cost?.defaultListSize, stepBudget: settings.maxSteps,
      });
    } catch (error) {
      if (error instanceof SlicingError) throw withHttpStatus(badUserInput(error.message, error.argument), 400);
      if (error instanceof DocumentTooComplex) {
        settings.onRejected?.('operation');
        this.refused('operation:too-complex');
        throw tooComplex(error.message, { maxSteps: error.budget });
      }
      throw error;
    }
    this.analysis = analysis;
    const cost = analysis.cost;
    this.cost.requested = cost;
    this.meta.cost = cost;
    settings.onCost?.(cost);
    const dryRun = analysis.dryRun;
    this.cost.dryRun = dryRun;
    // A dry run, or an operation that costs nothing, only reads where the key stands.
    const reading = dryRun || cost === 0;
    const maxCost = this.key.maxOperationCost ?? settings.maxCost;
    if (!reading && cost > maxCost && settings.mode === 'enforce') {
      settings.onRejected?.('operation');
      this.refused('operation:too-complex');
      throw tooComplex(`This operation costs ${cost} points; the most one operation may cost is ${maxCost}.`, { cost, maxCost });
    }
    // More than a whole window holds can never be admitted: not a 429 a client would retry for ever.
    const smallest = this.windows.reduce((a, b) => (b.limit < a.limit ? b : a));
    if (!reading && cost > smallest.limit && settings.mode === 'enforce') {
      settings.onRejected?.('operation');
      this.refused('operation:over-budget');
      const per = smallest.period ? (smallest.period === 'DAY' ? 'day' : 'month') : `${smallest.duration}-second window`;
      throw tooComplex(
        `This operation costs ${cost} points; this key's budget holds ${smallest.limit} points per ${per}, so it can never be admitted. Ask for less.`,
        { cost, limit: smallest.limit, ...(smallest.period ? { period: smallest.period } : { duration: smallest.duration }) },
      );
    }
    // A dry run executes nothing but the status field; anything else takes its root fields' budgets now.
    const fields = !dryRun && gates.prepay ? gates.prepay(this.key, analysis.rootType, analysis.rootFields, variables) : NO_FIELDS;

    // One store take, decided in order: the address's request (unless already decided), the
    // operation's budget (refusing the rest unless measuring), each limited root field on its own.
    // On a cluster the address's counter lives in another hash slot, so it is decided first — and
    // a refused address takes nothing at all.
    if (!this.ip.pending() || settings.store.sharded) {
      const ip = await this.ip.run();
      if (!ip.ok) throw this.admissions.ipRefusal(ip, this.meta);
    }
    const withIp = this.ip.pending();
    const first = withIp ? 1 : 0;
    const groups = new Array<Group>(first + 1 + fields.length); // sized up front: a pushed array reserves 17 slots
    if (withIp) groups[0] = { asks: [this.ip.ask()], required: true };
    const [owner, cap] = this.counterKeys;
    groups[first] = { asks: gate.asks(owner, this.windows, reading ? 0 : cost, cap), required: settings.mode === 'enforce' };
    for (let i = 0; i < fields.length; i++) groups[first + 1 + i] = { asks: settings.fieldGate.asks(this.key, fields[i].coordinate, fields[i].windows, fields[i].points) };
    const started = performance.now();
    let outcomes: GroupOutcome[];
    try {
      outcomes = await settings.store.take(groups);
    } finally {
      this.meta.budgetStoreMs = Math.round((performance.now() - started) * 100) / 100;
    }
    if (withIp) {
      // A refused address stops the take before anything else is taken.
      const ip = this.ip.decided(outcomes[0]);
      if (!ip.ok) throw this.admissions.ipRefusal(ip, this.meta);
    }

    const charge = outcomes[first];
    if (charge.ok && !reading) {
      this.cost.prepaid = cost;
      this.prepaidBuckets = bucketsOf(charge.states);
    }
    if (!charge.ok && settings.mode === 'enforce') {
      // The window that refused is the one the client must hear about.
      const at = Math.max(0, charge.refusedAt);
      const refusedBy = this.windows[at];
      const used = charge.states[at];
      this.record(charge.states, at);
      this.tellStanding(charge.states, at);
      settings.onRejected?.('operation');
      this.refused('operation');
      const remaining = this.cost.remaining ?? 0;
      const { period } = refusedBy;
      const ext = limitExtensions({ limit: refusedBy.limit, ...(period ? {} : { duration: refusedBy.duration }), remaining, msBeforeNext: retryAfterMs(used, cost, refusedBy) });
      const whose = refusedBy.cap ? "this key's own cap" : this.key.consumerId ? "its consumer's budget" : 'its budget';
      const which = period ? `the ${period === 'DAY' ? 'daily' : 'monthly'} quota (reset at 00:00 UTC${period === 'MONTH' ? ' on the 1st' : ''})` : `${whose} of ${refusedBy.duration} seconds`;
      throw rateLimited(
        `This operation costs ${cost} points and ${remaining} of ${refusedBy.limit} remain in ${which}; retry in ${ext.retryAfter} s.`,
        { gate: 'operation', cost, ...ext, ...(period ? { period } : {}), ...(refusedBy.cap ? { cap: true } : {}) },
      );
    }
    this.record(charge.states);
    this.charged = charge.states;
    // Measured, or admitted: each limited root field resolves with what its own take decided.
    if (fields.length) {
      this.prepaid = new Map();
      fields.forEach((field, i) => {
        const outcome = outcomes[first + 1 + i];
        this.prepaid!.set(field.responseKey, { field, outcome, buckets: bucketsOf(outcome.states) });
      });
    }
  }

  /**
   * Step 5. After execution: operations refused before the operation gate (parse, validation)
   * still answer for their address; what was not returned (shorter lists, nulls) or was refused
   * (bad input, scopes) is given back; and the response says where the key stands. Returns the
   * IP refusal that must replace the response, if any. Answers without a promise when there is
   * nothing to ask the store (the common case: the key's standing is known and nothing to refund).
   */
  settle(data: Record<string, unknown> | null | undefined, errors: readonly { path?: readonly (string | number)[]; extensions?: Record<string, unknown> }[] | undefined): Error | null | Promise<Error | null> {
    const ip = this.ip.known();
    if (!ip) return this.ip.run().then(() => this.settle(data, errors));
    if (!ip.ok) return this.admissions.ipRefusal(ip, this.meta);
    let refund = 0;
    if (this.cost.prepaid && this.analysis && data !== undefined) {
      this.cost.actual = Math.min(this.cost.prepaid, this.measure(data, errors));
      refund = this.cost.prepaid - this.cost.actual;
    }
    if (this.cost.remaining !== undefined && refund <= 0) {
      if (this.charged) this.tellStanding(this.charged);
      return null;
    }
    return this.settleWithStore(refund);
  }

  /**
   * Reads the budget's counters (spends nothing) and reports every window, as `rateLimit` does.
   * A store that does not answer is a 503: "nothing used" would be a reading nobody made.
   */
  async readStanding(): Promise<WindowStanding[]> {
    const { store } = this.admissions.settings;
    const [owner, cap] = this.counterKeys;
    const asks = this.admissions.gate.asks(owner, this.windows, 0, cap);
    const states = await Promise.all(asks.map((ask) => store.read(ask.limiter, ask.key))).catch(() => {
      throw serviceUnavailable('The limiter store did not answer, so where these windows stand is unknown just now; try again.');
    });
    this.record(states);
    return this.cost.windows ?? [];
  }

  private async settleWithStore(refund: number): Promise<null> {
    const { gate } = this.admissions;
    const { store } = this.admissions.settings;
    const [owner, cap] = this.counterKeys;
    const asks = gate.asks(owner, this.windows, 0, cap);
    const read = () => Promise.all(asks.map((ask) => store.read(ask.limiter, ask.key).catch(() => null)));
    let standing = this.charged;
    if (this.cost.remaining === undefined) this.record((standing = await read()));
    if (refund > 0) {
      // To the buckets the points came from; one that counts nothing any more gets nothing (and reports as is).
      const after = await store.giveBack(asks.map((ask, i) => ({ limiter: ask.limiter, key: ask.key, points: refund, bucket: this.prepaidBuckets[i] ?? -1 }))).catch(() => null);
      this.record((standing = after && after.every((state) => state) ? after : await read()));
    }
    if (standing) this.tellStanding(standing);
    return null;
  }

  /** What every authenticated response tells the client: extensions.cost and RateLimit headers. */
  report(): { extension: Record<string, unknown>; headers: Record<string, string> } | null {
    const budget = this.budget;
    const requested = this.cost.requested ?? 0;
    const mode = this.admissions.settings.headers ?? 'draft-8';
    // Refused before the budget was read (the IP gate): what is not known is left out.
    if (this.cost.remaining === undefined) {
      return { extension: { requestedQueryCost: requested, actualQueryCost: 0 }, headers: rateLimitHeaders(mode, this.policyWindows(), null) };
    }
    const resetAt = this.cost.resetAt?.getTime() ?? Date.now();
    return {
      extension: {
        requestedQueryCost: requested,
        actualQueryCost: this.cost.actual ?? (this.cost.prepaid ? requested : 0),
        throttleStatus: { maximumAvailable: this.cost.limit, currentlyAvailable: this.cost.remaining, resetAt: this.cost.resetAt && isoTime(this.cost.resetAt) },
      },
      headers: rateLimitHeaders(mode, this.policyWindows(), { name: policyName(budget, this.windows.indexOf(budget)), limit: budget.limit, remaining: this.cost.remaining, resetAt }),
    };
  }

  /**
   * Where the budget stands once the operation is done — after its refund, or as refused (by the
   * window at `refusedAt`) — for the alert watch: an estimate later refunded never alerts.
   */
  private tellStanding(states: readonly (CounterState | null | undefined)[], refusedAt?: number) {
    this.admissions.settings.onStanding?.(this.key, this.windows, states, refusedAt);
  }

  /**
   * Every window of the budget as the headers name it, the first `budget`; each partitioned by
   * whose counter it is (the key's caps are the key's own, the rest its owner's).
   */
  private policyWindows(): PolicyWindow[] {
    return this.windows.map((w, i) => ({ name: policyName(w, i), limit: w.limit, duration: w.duration, partition: w.cap ? this.key.id : this.key.owner }));
  }

  /**
   * Records where the key stands, from its budget counters (one state per window) as a take, a
   * read or a give-back left them — reporting the tightest window, or `at` (the one that refused).
   * A window not read is taken as unspent. `resetAt` is when that counter's current bucket ends:
   * what it holds then starts to fade (sliding-window.ts).
   */
  private record(states: readonly (CounterState | null | undefined)[], at?: number) {
    const left = (i: number) => this.windows[i].limit - (states[i]?.used ?? 0);
    let chosen = at ?? 0;
    if (at === undefined) for (let i = 1; i < this.windows.length; i++) if (left(i) < left(chosen)) chosen = i;
    const budget = (this.budget = this.windows[chosen]);
    const state = states[chosen];
    this.cost.limit = budget.limit;
    this.cost.window = budget.duration;
    this.cost.remaining = Math.max(0, left(chosen));
    this.cost.resetAt = new Date(Date.now() + (state ? state.msLeft : budget.duration * 1000));
    const now = Date.now();
    this.cost.windows = this.windows.map((w, i) => {
      const used = Math.min(w.limit, states[i]?.used ?? 0);
      const msLeft = states[i]?.msLeft ?? w.duration * 1000;
      return {
        limit: w.limit,
        window: w.period ? periodSeconds(w.period, now + msLeft) : w.duration,
        period: w.period ?? null,
        used,
        remaining: w.limit - used,
        resetAt: new Date(now + msLeft),
        owner: this.key.consumerId && !w.cap ? 'CONSUMER' : 'KEY',
      };
    });
  }
}

class OpenAdmission extends Admission {
  override forOperation(): Admission {
    return this; // nothing per operation to keep apart
  }
  override async chargeOperation(): Promise<void> {}
  override settle(): null {
    return null;
  }
  override report() {
    return null;
  }
}

/**
 * toISOString, remembered for the last instant: requests in one window share its reset time, and
 * formatting a date costs more than everything else in the report (measured ~1.5 µs here).
 */
let lastIso = { ms: NaN, text: '' };
function isoTime(date: Date): string {
  const ms = date.getTime();
  if (ms !== lastIso.ms) lastIso = { ms, text: date.toISOString() };
  return lastIso.text;
}

/** A quota period's length in seconds, from when it ends (a month's length varies). */
function periodSeconds(period: 'DAY' | 'MONTH', endsAt: number): number {
  if (period === 'DAY') return 86_400;
  const end = new Date(endsAt - 1);
  return (Date.UTC(end.getUTCFullYear(), end.getUTCMonth() + 1, 1) - Date.UTC(end.getUTCFullYear(), end.getUTCMonth(), 1)) / 1000;
}

/** A budget window's name in the RateLimit headers: the first is `budget`; others say their length and whether they cap the key. */
const policyName = (window: Window, index: number) =>
  index === 0 ? 'budget' : window.period ? `quota-${window.period.toLowerCase()}` : `${window.cap ? 'key' : 'budget'}-${window.duration}s`;

const NO_VARIABLES: Record<string, unknown> = Object.freeze({});
/** The bench's bare baseline has no Admissions: a budget nothing is taken from. */
const NO_BUDGET: readonly KeyWindow[] = [{ limit: 0, duration: 1 }];
const NO_FIELDS: readonly never[] = [];

/** The key gate refused: the access log says so, and why. */
function keyRefused(meta: RequestMeta, reason: AuthFailure) {
  (meta.gates ??= []).push('key');
  meta.reason = reason;
}

/** x-api-key, or Authorization: Bearer. Two different keys in one request are refused. */
export function readKeyHeader(headers: IncomingHttpHeaders): string | undefined {
  const header = headers['x-api-key'];
  if (Array.isArray(header)) throw badRequest('Send one x-api-key header.');
  const authorization = headers.authorization;
  let bearer: string | undefined;
  if (authorization !== undefined) {
    const match = /^Bearer[ ]+(\S+)\s*$/i.exec(authorization);
    if (!match) throw unauthenticated('The Authorization header must be "Bearer <api key>".');
    bearer = match[1];
  }
  const key = header?.trim();
  if (key && bearer && key !== bearer) throw badRequest('Two different API keys were sent (x-api-key and Authorization); send one.');
  return key || bearer;
}

function refusedPaths(errors: readonly { path?: readonly (string | number)[]; extensions?: Record<string, unknown> }[] | undefined): Set<string> | undefined {
  if (!errors?.length) return undefined;
  return new Set(errors.filter((e) => e.path && FREE_REFUSALS.has(e.extensions?.code)).map((e) => e.path!.join('.')));
}
