import { GraphQLError, getOperationAST, getVariableValues, parse, type DocumentNode, type GraphQLSchema } from 'graphql';
import { fragmentsOf } from './operation-analysis';
import { readFieldPolicies, type FieldPolicy } from '../directives/field-policies';
import { DEFAULT_COST_RULES, requestedCost, type CostRules } from './operation-cost';

const policiesBySchema = new WeakMap<GraphQLSchema, Map<string, FieldPolicy>>();

/**
 * What an operation costs under the IBM cost directives, exactly as the operation gate prices it
 * — for pricing operations in CI, or checking Tollgate against another implementation. The
 * schema must declare the directives (`directiveTypeDefs`, or one Tollgate built).
 */
export function estimateCost(options: {
  schema: GraphQLSchema;
  document: DocumentNode | string;
  variables?: Record<string, unknown>;
  operationName?: string;
  defaultListSize?: number;
  rules?: Partial<CostRules>;
}): number {
  const { schema } = options;
  const document = typeof options.document === 'string' ? parse(options.document) : options.document;
  const operation = getOperationAST(document, options.operationName);
  if (!operation) throw new GraphQLError(options.operationName ? `No operation named "${options.operationName}".` : 'The document must hold exactly one operation, or name one.');
  const coerced = getVariableValues(schema, operation.variableDefinitions ?? [], options.variables ?? {});
  if (coerced.errors) throw coerced.errors[0];
  let policies = policiesBySchema.get(schema);
  if (!policies) policiesBySchema.set(schema, (policies = readFieldPolicies(schema)));
  return requestedCost({
    schema,
    operation,
    fragments: fragmentsOf(document),
    variables: coerced.coerced,
    policies,
    defaultListSize: options.defaultListSize,
    rules: { ...DEFAULT_COST_RULES, ...options.rules },
  });
}
