import {
  Kind, getNamedType, getNullableType, isAbstractType, isCompositeType, isListType, type FieldNode,
  type FragmentDefinitionNode, type GraphQLCompositeType, type GraphQLNamedType, type GraphQLObjectType,
  type GraphQLSchema, type OperationDefinitionNode, type SelectionSetNode, getArgumentValues, getDirectiveValues,
  GraphQLIncludeDirective, GraphQLSkipDirective,
} from 'graphql';
import { listMultiplier, type FieldPolicy } from './field-policies';

/**
 * Operation cost after the IBM GraphQL Cost Directives spec, computed from the document alone,
 * before any resolver runs:
 *   - a field costs its @cost weight, else the default: 1 for an object/interface/union field,
 *     0 for a scalar or enum, 10 for a root mutation field;
 *   - a list field multiplies (its weight + its selection's cost) by the list size: the largest
 *     slicing argument (variables and schema defaults resolved), else @listSize(assumedSize), else
 *     DEFAULT_LIST_SIZE; with `sizedFields` the size applies to those child lists instead
 *     (Relay connections: `first` sizes `edges`);
 *   - fragments and inline fragments are expanded, aliases count separately, @skip/@include are
 *     honoured, and an abstract type costs as its most expensive possible type.
 * `actualCost` walks the same document over the response data, so lists count their real length.
 */
export const DEFAULT_LIST_SIZE = 10;
export const DEFAULT_MUTATION_WEIGHT = 10;

export type CostInput = {
  schema: GraphQLSchema;
  operation: OperationDefinitionNode;
  fragments: Record<string, FragmentDefinitionNode>;
  variables: Record<string, unknown>;
  policies: ReadonlyMap<string, FieldPolicy>;
  /** Root fields left out of the count (e.g. `rateLimit`, which never costs anything). */
  skipRootFields?: ReadonlySet<string>;
};

export function requestedCost(input: CostInput): number {
  return walkOperation(input, undefined);
}

/**
 * Cost of what was really returned: list sizes are the lengths in `data`; null fields cost their
 * weight only, and fields refused at `refusedPaths` (response paths such as `bad` or
 * `stations.edges.3.node.observations`: refused as bad input or for a scope) cost nothing.
 */
export function actualCost(input: CostInput, data: Record<string, unknown> | null | undefined, refusedPaths?: ReadonlySet<string>): number {
  return data ? walkOperation(input, data, refusedPaths) : 0;
}

/** `data` undefined: price the request; otherwise measure the response. */
type Walk = { input: CostInput; fragmentPath: Set<string>; refused?: ReadonlySet<string> };

function walkOperation(input: CostInput, data: Record<string, unknown> | undefined, refused?: ReadonlySet<string>): number {
  const root = input.operation.operation === 'mutation' ? input.schema.getMutationType() : input.operation.operation === 'subscription' ? input.schema.getSubscriptionType() : input.schema.getQueryType();
  if (!root) return 0;
  return selectionCost({ input, fragmentPath: new Set(), refused: refused?.size ? refused : undefined }, input.operation.selectionSet, root, data, true, undefined, '');
}

/**
 * `childSizes`: list sizes for direct children named in the parent's @listSize(sizedFields),
 * e.g. `edges` of a connection sized by `first`.
 */
function selectionCost(walk: Walk, selectionSet: SelectionSetNode, type: GraphQLCompositeType, data: unknown, isRoot: boolean, childSizes: Map<string, number> | undefined, path: string): number {
  if (isAbstractType(type)) {
    // The most expensive possible type: a client cannot make a union cheaper by asking about it.
    const possible = walk.input.schema.getPossibleTypes(type);
    return Math.max(0, ...possible.map((t) => objectSelectionCost(walk, selectionSet, t, data, isRoot, childSizes, path)));
  }
  return objectSelectionCost(walk, selectionSet, type as GraphQLObjectType, data, isRoot, childSizes, path);
}

function objectSelectionCost(walk: Walk, selectionSet: SelectionSetNode, type: GraphQLObjectType, data: unknown, isRoot: boolean, childSizes: Map<string, number> | undefined, path: string): number {
  const { input, fragmentPath } = walk;
  let total = 0;
  for (const selection of selectionSet.selections) {
    if (!included(selection, input.variables)) continue;
    if (selection.kind === Kind.FIELD) {
      total += fieldCost(walk, selection, type, data, isRoot, childSizes?.get(selection.name.value), path);
    } else if (selection.kind === Kind.INLINE_FRAGMENT) {
      if (selection.typeCondition && !appliesTo(input.schema, selection.typeCondition.name.value, type)) continue;
      total += objectSelectionCost(walk, selection.selectionSet, type, data, isRoot, childSizes, path);
    } else {
      const name = selection.name.value;
      const fragment = input.fragments[name];
      // Cycles are refused by validation; this guard keeps a bad document from recursing forever.
      if (!fragment || fragmentPath.has(name) || !appliesTo(input.schema, fragment.typeCondition.name.value, type)) continue;
      fragmentPath.add(name);
      total += objectSelectionCost(walk, fragment.selectionSet, type, data, isRoot, childSizes, path);
      fragmentPath.delete(name);
    }
  }
  return total;
}

function fieldCost(walk: Walk, node: FieldNode, parent: GraphQLObjectType, parentData: unknown, isRoot: boolean, sizeFromParent: number | undefined, parentPath: string): number {
  const { input } = walk;
  const name = node.name.value;
  if (name.startsWith('__')) return 0;
  if (isRoot && input.skipRootFields?.has(name)) return 0;
  const def = parent.getFields()[name];
  if (!def) return 0;
  const measuring = parentData !== undefined;
  const responseKey = node.alias?.value ?? name;
  const path = walk.refused ? (parentPath ? `${parentPath}.${responseKey}` : responseKey) : '';
  if (measuring && walk.refused?.has(path)) return 0; // refused before it did any work
  const value = measuring ? (parentData as Record<string, unknown> | null)?.[responseKey] : undefined;
  const policy = input.policies.get(`${parent.name}.${name}`);
  const named = getNamedType(def.type) as GraphQLNamedType;
  const weight = policy?.weight ?? (isRoot && input.operation.operation === 'mutation' ? DEFAULT_MUTATION_WEIGHT : isCompositeType(named) ? 1 : 0);
  if (measuring && (value === null || value === undefined)) return weight;

  const args = getArgumentValues(def, node, input.variables);
  const sizedFields = policy?.listSize?.sizedFields ?? [];
  // A connection passes its size down to the lists it names instead of multiplying itself.
  const childSizes = sizedFields.length && !measuring ? new Map(sizedFields.map((f) => [f, listMultiplier(policy!, args)])) : undefined;
  const childCost = (childData: unknown, childPath: string) =>
    node.selectionSet && isCompositeType(named) ? selectionCost(walk, node.selectionSet, named, childData, false, childSizes, childPath) : 0;

  if (isListType(getNullableType(def.type)) && !sizedFields.length) {
    if (measuring) return (value as unknown[]).reduce<number>((sum, item, i) => sum + weight + childCost(item, walk.refused ? `${path}.${i}` : ''), 0);
    const size = sizeFromParent ?? (policy?.listSize ? listMultiplier(policy, args) : DEFAULT_LIST_SIZE);
    return size * (weight + childCost(undefined, ''));
  }
  return weight + childCost(measuring ? value : undefined, path);
}

export function included(node: { directives?: readonly import('graphql').DirectiveNode[] }, variables: Record<string, unknown>): boolean {
  if (!node.directives?.length) return true;
  const skip = getDirectiveValues(GraphQLSkipDirective, node as FieldNode, variables);
  if (skip?.if === true) return false;
  const include = getDirectiveValues(GraphQLIncludeDirective, node as FieldNode, variables);
  return include?.if !== false;
}

function appliesTo(schema: GraphQLSchema, typeCondition: string, type: GraphQLObjectType): boolean {
  if (typeCondition === type.name) return true;
  const conditionType = schema.getType(typeCondition);
  return !!conditionType && isAbstractType(conditionType) && schema.isSubType(conditionType, type);
}
