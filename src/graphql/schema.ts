import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { GraphQLSchema } from 'graphql';
import { makeExecutableSchema } from '@graphql-tools/schema';
import type { IExecutableSchemaDefinition } from '@graphql-tools/schema';
import { DateTimeResolver, JSONObjectResolver } from 'graphql-scalars';
import { applyRequireScopes, readRequiredScopes } from '../directives/require-scopes';
import type { FieldGate } from '../gates/field-gate';
import { readFieldPolicies, type FieldPolicy } from '../directives/field-policies';
import { applyRateLimitDirective, type PrepayRootFields } from '../directives/rate-limit-directive';
import { rateLimitStatusResolvers } from './rate-limit-status';
import type { AuthenticatedKey } from '../keys/types';

/** Tollgate's SDL folder: schema/ beside src/ (or dist/src/, or an installed package's). */
function findSchemaFolder(): string {
  let dir = __dirname;
  for (let i = 0; i < 5; i++, dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, 'schema', 'directives.graphql'))) return path.join(dir, 'schema');
  }
  throw new Error(`schema/ folder not found above ${__dirname}`);
}

export const schemaFolder = findSchemaFolder();
const sdl = (file: string) => readFileSync(path.join(schemaFolder, file), 'utf8');

/** The protection directives (@rateLimit, @cost, @listSize, @requireScopes), for tools that want them alone. */
export const directiveTypeDefs = sdl('directives.graphql');
/** What every protected schema gets: the directives, shared scalars and `rateLimit`. */
const coreTypeDefs = [directiveTypeDefs, sdl('common.graphql'), sdl('rate-limit.graphql')];
/** The key-administration API (`me`, `createApiKey`, …), merged in unless turned off. */
export const adminTypeDefs = sdl('admin.graphql');
/** Consumers and plans, part of the admin API. */
export const consumerTypeDefs = sdl('consumers.graphql');
export const usageTypeDefs = sdl('usage.graphql');
export const alertTypeDefs = sdl('alerts.graphql');

export type SchemaSpec = Pick<IExecutableSchemaDefinition, 'typeDefs' | 'resolvers'>;

export type BuiltSchema = {
  schema: GraphQLSchema;
  policies: ReadonlyMap<string, FieldPolicy>;
  /** Coordinates carrying @rateLimit: the ones a key may override. */
  limitedCoordinates: ReadonlySet<string>;
  /** Keeps the field gate's view of a key's own overrides current. */
  rememberKey(key: AuthenticatedKey): void;
  /** Takes limited root fields' budgets with the operation's; null when the gates are off. */
  prepay: PrepayRootFields | null;
};

/**
 * The owner's SDL and resolvers plus Tollgate's, then the protection directives. Order matters:
 * the transformer applied last wraps outermost and runs first, so scopes are checked before any
 * budget is spent. With `fieldGate` null (the bench's bare variant) the directives are inert.
 */
export function buildSchema(spec: SchemaSpec, options: {
  fieldGate: FieldGate | null;
  /** Resolvers of the admin API; null leaves it out of the schema. */
  admin: IExecutableSchemaDefinition['resolvers'] | null;
  onRejected?: (coordinate: string) => void;
  defaultListSize?: number;
}): BuiltSchema {
  const owners = (v: unknown) => (v === undefined ? [] : Array.isArray(v) ? v : [v]);
  const base = makeExecutableSchema({
    typeDefs: [...coreTypeDefs, ...(options.admin ? [adminTypeDefs, consumerTypeDefs, usageTypeDefs, alertTypeDefs] : []), ...owners(spec.typeDefs)],
    resolvers: [{ DateTime: DateTimeResolver, JSONObject: JSONObjectResolver }, rateLimitStatusResolvers, ...owners(options.admin ?? undefined), ...owners(spec.resolvers)],
  });
  const policies = readFieldPolicies(base);
  const limitedCoordinates = new Set([...policies.values()].filter((p) => p.windows.length).map((p) => p.coordinate));
  if (!options.fieldGate) return { schema: base, policies, limitedCoordinates, rememberKey: () => {}, prepay: null };
  const limited = applyRateLimitDirective(base, { gate: options.fieldGate, policies, requiredScopes: readRequiredScopes(base), onRejected: options.onRejected, defaultListSize: options.defaultListSize });
  return { schema: applyRequireScopes(limited.schema), policies, limitedCoordinates, rememberKey: limited.rememberKey, prepay: limited.prepay };
}
