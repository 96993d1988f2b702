import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { GraphQLSchema } from 'graphql';
import { makeExecutableSchema } from '@graphql-tools/schema';
import { DateTimeResolver, JSONObjectResolver } from 'graphql-scalars';
import { adminResolvers } from './admin/resolvers';
import { applyRequireScopes, readRequiredScopes } from './admin/require-scopes';
import { applyRateLimitDirective, type FieldLimitContext, type RootFieldPrecharge } from './limits/rate-limit-directive';
import { readFieldPolicies, type FieldPolicy } from './limits/field-policies';
import type { FieldGate } from './limits/field-gate';
import type { AuthenticatedKey } from './keys/types';
import { weatherResolvers } from './weather/resolvers';
import { rateLimitStatusResolvers } from './limits/rate-limit-status';

function findSchemaFolder(): string {
  let dir = __dirname;
  for (let i = 0; i < 5; i++, dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, 'schema', 'directives.graphql'))) return path.join(dir, 'schema');
  }
  throw new Error(`schema/ folder not found above ${__dirname}`);
}

export const schemaFolder = findSchemaFolder();

export function loadTypeDefs(folder = schemaFolder): string[] {
  return readdirSync(folder)
    .filter((f) => f.endsWith('.graphql'))
    .sort()
    .map((f) => readFileSync(path.join(folder, f), 'utf8'));
}

export type BuiltSchema = {
  schema: GraphQLSchema;
  policies: ReadonlyMap<string, FieldPolicy>;
  /** Coordinates carrying @rateLimit: the ones a key may override. */
  limitedCoordinates: ReadonlySet<string>;
  rememberKey(key: AuthenticatedKey): void;
  /** Takes limited root fields' budgets with the operation's; null when the gates are off. */
  precharge: RootFieldPrecharge | null;
};

/**
 * SDL + resolvers, then the protection directives. Order matters: the transformer applied last
 * wraps outermost and runs first, so scopes are checked before any budget is spent.
 * With `gate` null (the bench's bare variant) the directives are declared but inert.
 */
export function buildSchema(gate: FieldGate | null, onRejected?: (coordinate: string, context: FieldLimitContext) => void): BuiltSchema {
  const base = makeExecutableSchema({
    typeDefs: loadTypeDefs(),
    resolvers: [{ DateTime: DateTimeResolver, JSONObject: JSONObjectResolver }, weatherResolvers, adminResolvers, rateLimitStatusResolvers],
  });
  const policies = readFieldPolicies(base);
  const limitedCoordinates = new Set([...policies.values()].filter((p) => p.windows.length).map((p) => p.coordinate));
  if (!gate) return { schema: base, policies, limitedCoordinates, rememberKey: () => {}, precharge: null };
  const limited = applyRateLimitDirective(base, { gate, policies, requiredScopes: readRequiredScopes(base), onRejected });
  return { schema: applyRequireScopes(limited.schema), policies, limitedCoordinates, rememberKey: limited.rememberKey, precharge: limited.precharge };
}
