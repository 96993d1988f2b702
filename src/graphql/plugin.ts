import type { ApolloServerPlugin, GraphQLRequestListener } from '@apollo/server';
import { GraphQLError, execute, type GraphQLSchema, type OperationDefinitionNode } from 'graphql';
import type { Logger } from 'pino';
import { ErrorCode, isDependencyFailure, replaceWithError } from '../errors';
import { onlyStatusFields } from '../document/operation-analysis';
import type { RequestMeta, SchemaGates } from '../gates/pipeline';
import type { TollgateContext } from './context';
import { createHardening, isHardeningRefusal, type HardeningLimits } from './hardening';
import { setResponseStatus } from './response-status';
import { fieldChargesIn } from '../directives/rate-limit-directive';
import { operationUsage } from '../usage/operation-usage';
import type { UsageCounter } from '../usage/counter';

export type PluginOptions = {
  logger: Logger;
  /** Query hardening limits; null turns hardening off (the bench's bare baseline). */
  hardening: HardeningLimits | null;
  /** The schema-side gates of a schema Tollgate built (policies, prepaid root fields). */
  gatesOf(schema: GraphQLSchema): SchemaGates | undefined;
  /** Where each keyed operation's usage is counted (null: usage tracking off). */
  usage: UsageCounter | null;
};

/**
 * The one Apollo plugin Tollgate needs. Thin by design: the order of the gates lives in
 * Admission (gates/pipeline.ts); this only calls it at the right moments of Apollo's request
 * pipeline, and turns what happened into the answer:
 *   didResolveOperation  hardening, then step 3 (operation cost and budget); a throw refuses with nothing run
 *   responseForOperation a dry run executes only the status field
 *   didEncounterErrors   dependency outages become SERVICE_UNAVAILABLE; unexpected errors are logged by request id
 *   willSendResponse     step 5 (refund, report), masking, and the HTTP status from the one code table
 */
export function tollgatePlugin(options: PluginOptions): ApolloServerPlugin<TollgateContext> {
  const check = options.hardening ? createHardening(options.hardening) : null;
  // One listener for every request (it keeps no state of its own): nothing to allocate per request.
  const listener: GraphQLRequestListener<TollgateContext> = {
    async didResolveOperation(rc) {
      const admission = rc.contextValue.admission;
      if (!admission) throw new Error('Tollgate\'s context function is not installed: pass `context: tollgate.context` to your server.');
      admission.meta.operationName = rc.operationName;
      admission.meta.operationType = rc.operation?.operation;
      if (!rc.operation) return; // no such operation: Apollo answers 400 itself
      try {
        check?.(rc.schema, rc.document, rc.source);
      } catch (error) {
        refused(admission.meta, 'hardening');
        throw error;
      }
      const gates = options.gatesOf(rc.schema);
      if (!gates) return; // gates off (the bench's bare baseline): nothing to price
      await admission.chargeOperation({ schema: rc.schema, document: rc.document, operation: rc.operation, variables: rc.request.variables }, gates);
    },

    async responseForOperation(rc) {
      if (!rc.contextValue.admission?.cost.dryRun) return null;
      // dryRun: cost everything, execute only the status field, charge nothing.
      const admission = rc.contextValue.admission;
      const document = onlyStatusFields(rc.document, rc.operation as OperationDefinitionNode, admission.statusFields);
      const result = await execute({ schema: rc.schema, document, contextValue: rc.contextValue, variableValues: rc.request.variables });
      return { http: rc.response.http, body: { kind: 'single', singleResult: { data: result.data, errors: result.errors?.map((e) => e.toJSON()) } } };
    },

    async didEncounterErrors({ errors, contextValue }) {
      for (const error of errors) {
        if (contextValue?.admission && isHardeningRefusal(error)) refused(contextValue.admission.meta, 'hardening');
        // No schema reconnaissance by guessing: "Did you mean …" suggestions are cut.
        if (error.message.includes('Did you mean')) Object.assign(error, { message: error.message.replace(/ ?Did you mean .+\?$/, '') });
        // Apollo's refusal tells the client to pass an ApolloServer constructor option; the owner's
        // switch is the setting (apolloOptions passes it to Apollo as `introspection`).
        if (error.extensions?.validationErrorCode === 'INTROSPECTION_DISABLED') Object.assign(error, { message: INTROSPECTION_OFF });
        if (isDependencyFailure(error.originalError ?? error)) {
          // Rewritten before Apollo formats it: the client sees a coded 503, never a driver message.
          Object.assign(error, { message: 'A service this API depends on is temporarily unavailable; try again shortly.' });
          Object.assign(error.extensions, { code: ErrorCode.SERVICE_UNAVAILABLE, retryAfter: 5 });
          continue;
        }
        if (!isUnexpected(error)) continue;
        const original = error.originalError ?? error;
        options.logger.error({ reqId: contextValue?.requestId, err: original }, 'unexpected error in GraphQL execution');
      }
    },

    async willSendResponse({ response, contextValue }) {
      if (response.body.kind !== 'single') return;
      const admission = contextValue.admission;
      // Answered: the concurrency slot goes back now, unless the HTTP response's end gives it back (tollgate.ts).
      if (admission?.slot && !admission.slot.bound) admission.slot.release();
      if (admission) {
        const single = response.body.singleResult;
        const settled = admission.settle(single.data, single.errors);
        const refusal = settled instanceof Promise ? await settled : settled;
        // Counted as the client is answered: refused for its address after all, or as it stands.
        options.usage?.record(admission.key, operationUsage({ cost: admission.cost, errors: refusal ? [refusal as GraphQLError] : single.errors, prepaid: admission.prepaid, charges: fieldChargesIn(contextValue) }));
        // Refused for its address after all (an operation stopped before the gate still counts).
        if (refusal && response.http.status !== 429) return replaceWithError(response, refusal as GraphQLError);
        const report = admission.report();
        if (report) {
          // A new result rather than a property added to Apollo's: its result is built by object
          // spread, and adding a property to such an object is V8's slow path (measured ~2 µs).
          const extensions = single.extensions ? { ...single.extensions, cost: report.extension } : { cost: report.extension };
          response.body.singleResult = { data: single.data, errors: single.errors, extensions };
          for (const name in report.headers) response.http.headers.set(name, report.headers[name]);
        }
      }
      if (contextValue.requestId && !response.http.headers.has('x-request-id')) response.http.headers.set('x-request-id', contextValue.requestId);
      const single = response.body.singleResult;
      if (single.errors) {
        // Clients never see an internal message: the request id ties it to the log line.
        // Nor a stack: Apollo adds one unless NODE_ENV is production or test, whoever runs it.
        single.errors = single.errors.map((e) => {
          if (e.extensions?.code === ErrorCode.INTERNAL_SERVER_ERROR) {
            return { message: `Internal error; quote request id ${contextValue.requestId}.`, locations: e.locations, path: e.path, extensions: { code: ErrorCode.INTERNAL_SERVER_ERROR, requestId: contextValue.requestId } };
          }
          if (!e.extensions || !('stacktrace' in e.extensions)) return e;
          const { stacktrace: _stack, ...extensions } = e.extensions;
          return { ...e, extensions };
        });
      }
      setResponseStatus(response);
    },
  };
  return {
    async requestDidStart(rc) {
      // Each operation of a batch has its own admission (Apollo gives each a shallow copy of the
      // request's context, so this assignment is the operation's own).
      if (rc.contextValue.admission) rc.contextValue.admission = rc.contextValue.admission.forOperation();
      return listener;
    },
  };
}

/** The access log's `gates`, once per request. */
function refused(meta: RequestMeta, gate: string) {
  if (!meta.gates?.includes(gate)) (meta.gates ??= []).push(gate);
}

const INTROSPECTION_OFF = 'Introspection (__schema, __type) is turned off on this server: ALLOW_INTROSPECTION=true turns it on (it is off by default when NODE_ENV=production).';

/** An exception thrown somewhere (a bug, a dead dependency), as opposed to an error made for the client. */
export function isUnexpected(error: unknown): boolean {
  if (!(error instanceof GraphQLError)) return true;
  const code = error.extensions?.code;
  if (code && code !== ErrorCode.INTERNAL_SERVER_ERROR) return false;
  return code === ErrorCode.INTERNAL_SERVER_ERROR || (!!error.originalError && !(error.originalError instanceof GraphQLError));
}
