import {
  Kind, getArgumentValues, getNamedType, getNullableType, isAbstractType, isCompositeType, isInputObjectType, isListType,
  type FragmentDefinitionNode, type GraphQLCompositeType, type GraphQLField, type GraphQLInputType, type GraphQLNamedType, type GraphQLObjectType,
  type GraphQLSchema, type OperationDefinitionNode, type SelectionSetNode,
} from 'graphql';
import { getDirective } from '@graphql-tools/utils';
import { DEFAULT_LIST_SIZE, listMultiplier, type FieldPolicy } from '../directives/field-policies';
import { FieldCollection, included, type CollectedFields, type FieldGroup } from './collect-fields';

/**
 * Operation cost after the IBM GraphQL Cost Directives spec, computed from the document alone,
 * before any resolver runs:
 *   - a field costs its weight: its @cost, else its type's @cost (OBJECT, SCALAR, ENUM), else 1
 *     for an object/interface/union and 0 for a scalar or enum; a root mutation field without
 *     @cost costs 10 (see CostRules for the routers' variants);
 *   - plus what its argument values cost: an input object 1 (or its argument's @cost) plus its
 *     fields, a list the sum of its items, a scalar its argument's or input field's @cost, else 0;
 *   - a list field multiplies (its weight + its selection's cost) by the list size: the largest
 *     slicing value (an argument, a path into an input object, or a list argument's length;
 *     variables and defaults resolved), else @listSize(assumedSize), else the default list size;
 *     with `sizedFields` the size applies to those lists instead (`edges`, or a path `page { edges }`);
 *   - fields are read as graphql-js executes them (collect-fields.ts): repeated response keys and
 *     fragments spread twice count once, aliases count separately, @skip/@include are honoured,
 *     and an abstract type costs as its most expensive possible type.
 * `actualCost` reads the same collection over the response data, so lists count their real length.
 * Both walks are memoised over the collection and spend its step budget: never more work than
 * MAX_QUERY_STEPS, whatever the document.
 */
export { DEFAULT_LIST_SIZE };
export const DEFAULT_MUTATION_WEIGHT = 10;

/**
 * Where implementations of the spec differ, and which rule Tollgate follows by default:
 *  - mutation: 'per-field' (default) — every root mutation field without @cost costs 10: each is
 *    a write. 'per-operation' — Apollo Router: 10 once per mutation operation, fields at their weight.
 *  - abstractTypes: 'max' (default) — a union or interface costs as its most expensive member: only
 *    one matches per item, and a client cannot make it cheaper by asking about fewer types.
 *    'sum' — Apollo Router and Hive: every type-conditioned fragment adds up.
 *  - typeWeight: 'replace' (default, Apollo Router) — a field's @cost replaces its type's: the
 *    field is the most specific statement of its cost. 'add' — Hive: both count.
 */
export type CostRules = { mutation: 'per-field' | 'per-operation'; abstractTypes: 'max' | 'sum'; typeWeight: 'replace' | 'add' };
export const DEFAULT_COST_RULES: CostRules = { mutation: 'per-field', abstractTypes: 'max', typeWeight: 'replace' };

export type CostInput = {
  schema: GraphQLSchema;
  operation: OperationDefinitionNode;
  fragments: Record<string, FragmentDefinitionNode>;
  variables: Record<string, unknown>;
  policies: ReadonlyMap<string, FieldPolicy>;
  /** Root fields left out of the count (e.g. `rateLimit`, which never costs anything). */
  skipRootFields?: ReadonlySet<string>;
  /** The operation's field collection (made from the above with the default step budget when absent). */
  collection?: FieldCollection;
  defaultListSize?: number;
  rules?: CostRules;
};

/** @cost read at every location the SDL declares it, once per schema. */
type CostWeights = { types: Map<string, number>; arguments: Map<string, number>; inputFields: Map<string, number> };
const weightsBySchema = new WeakMap<GraphQLSchema, CostWeights>();

export function costWeights(schema: GraphQLSchema): CostWeights {
  let weights = weightsBySchema.get(schema);
  if (weights) return weights;
  weights = { types: new Map(), arguments: new Map(), inputFields: new Map() };
  const weightOf = (node: Parameters<typeof getDirective>[1]) => {
    const cost = getDirective(schema, node, 'cost')?.[0];
    return cost ? Number(cost.weight) : undefined;
  };
  for (const type of Object.values(schema.getTypeMap())) {
    if (type.name.startsWith('__')) continue;
    const own = weightOf(type);
    if (own !== undefined) weights.types.set(type.name, own);
    if (isInputObjectType(type)) {
      for (const field of Object.values(type.getFields())) {
        const w = weightOf(field);
        if (w !== undefined) weights.inputFields.set(`${type.name}.${field.name}`, w);
      }
    } else if ('getFields' in type) {
      for (const field of Object.values(type.getFields()) as GraphQLField<unknown, unknown>[]) {
        for (const arg of field.args) {
          const w = weightOf(arg);
          if (w !== undefined) weights.arguments.set(`${type.name}.${field.name}(${arg.name}:)`, w);
        }
      }
    }
  }
  weightsBySchema.set(schema, weights);
  return weights;
}

/** What a field's argument values cost (input objects, lists of them, @cost on arguments and input fields). */
export function argumentsCost(schema: GraphQLSchema, parentType: string, field: GraphQLField<unknown, unknown>, args: Record<string, unknown>): number {
  const weights = costWeights(schema);
  let total = 0;
  for (const arg of field.args) {
    total += valueCost(weights, args[arg.name], arg.type, weights.arguments.get(`${parentType}.${field.name}(${arg.name}:)`));
  }
  return total;
}

function valueCost(weights: CostWeights, value: unknown, type: GraphQLInputType, weight: number | undefined): number {
  if (value === null || value === undefined) return 0;
  const nullable = getNullableType(type);
  if (isListType(nullable)) {
    const items = Array.isArray(value) ? value : [value];
    return (weight ?? 0) + items.reduce<number>((sum, item) => sum + valueCost(weights, item, nullable.ofType, undefined), 0);
  }
  if (isInputObjectType(nullable)) {
    let total = weight ?? 1;
    for (const [name, fieldValue] of Object.entries(value as Record<string, unknown>)) {
      const field = nullable.getFields()[name];
      if (field) total += valueCost(weights, fieldValue, field.type, weights.inputFields.get(`${nullable.name}.${name}`));
    }
    return total;
  }
  return weight ?? 0;
}

/** A sizedFields entry, `edges` or a nested path `page { edges }`, as the names along it. */
function sizedPath(entry: string): string[] {
  return entry.replace(/[{}]/g, ' ').split(/\s+/).filter(Boolean);
}

/** Steps a reading may take when the caller gives no collection of its own (estimateCost, tests). */
export const DEFAULT_STEP_BUDGET = 100_000;

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

/** The collection of an input: its own, or one made for it. */
export function collectionOf(input: CostInput): FieldCollection {
  return input.collection ?? new FieldCollection(input.schema, input.fragments, input.variables, DEFAULT_STEP_BUDGET);
}

export function rootTypeOf(schema: GraphQLSchema, operation: OperationDefinitionNode): GraphQLObjectType | null | undefined {
  return operation.operation === 'mutation' ? schema.getMutationType() : operation.operation === 'subscription' ? schema.getSubscriptionType() : schema.getQueryType();
}

/** `data` undefined: price the request; otherwise measure the response. */
type Walk = {
  input: CostInput;
  collection: FieldCollection;
  rules: CostRules;
  weights: CostWeights;
  refused?: ReadonlySet<string>;
  /** Requested cost of a collected selection, once each (no sizes handed down, not the root). */
  priced: WeakMap<CollectedFields, number>;
};
/** Sizes a parent's @listSize(sizedFields) hands down: the child named, and the rest of the path below it. */
type ChildSizes = Map<string, { rest: string[]; size: number }[]>;

function walkOperation(input: CostInput, data: Record<string, unknown> | undefined, refused?: ReadonlySet<string>): number {
  const root = rootTypeOf(input.schema, input.operation);
  if (!root) return 0;
  const rules = input.rules ?? DEFAULT_COST_RULES;
  const collection = collectionOf(input);
  const walk: Walk = { input, collection, rules, weights: costWeights(input.schema), refused: refused?.size ? refused : undefined, priced: new WeakMap() };
  const base = input.operation.operation === 'mutation' && rules.mutation === 'per-operation' ? DEFAULT_MUTATION_WEIGHT : 0;
  return base + fieldsCost(walk, collection.fieldsOf(input.operation.selectionSet, root), root, data, true, undefined, '');
}

/** What a group's selection costs on its return type (object, interface or union). */
function selectionCost(walk: Walk, group: FieldGroup, type: GraphQLCompositeType, data: unknown, childSizes: ChildSizes | undefined, path: string): number {
  const { collection } = walk;
  if (isAbstractType(type)) {
    const possible = walk.input.schema.getPossibleTypes(type);
    // Measuring a response: the item's own type (its __typename when asked for), else the priciest.
    const actual = data && typeof data === 'object' ? possible.find((t) => t.name === (data as { __typename?: unknown }).__typename) : undefined;
    if (actual) return fieldsCost(walk, collection.subfields(group, actual), actual, data, false, childSizes, path);
    if (walk.rules.abstractTypes === 'sum') return sumOfConditioned(walk, group, possible, data, childSizes, path);
    // The most expensive possible type: a client cannot make a union cheaper by asking about it.
    let most = 0;
    for (const t of possible) most = Math.max(most, fieldsCost(walk, collection.subfields(group, t), t, data, false, childSizes, path));
    return most;
  }
  return fieldsCost(walk, collection.subfields(group, type as GraphQLObjectType), type as GraphQLObjectType, data, false, childSizes, path);
}

/**
 * The routers' rule for abstract types: fields selected on the abstract type itself count once,
 * and every type-conditioned fragment adds its own cost.
 */
function sumOfConditioned(walk: Walk, group: FieldGroup, possible: readonly GraphQLObjectType[], data: unknown, childSizes: ChildSizes | undefined, path: string): number {
  const { collection, input } = walk;
  const first = possible[0];
  if (!first) return 0;
  let total = 0;
  const sharedSets: SelectionSetNode[] = [];
  for (const node of group.nodes) {
    if (!node.selectionSet) continue;
    sharedSets.push(fieldsOnly(node.selectionSet));
    for (const selection of node.selectionSet.selections) {
      collection.spend();
      if (selection.kind === Kind.FIELD || !included(selection, input.variables)) continue;
      const condition = selection.kind === Kind.INLINE_FRAGMENT ? selection.typeCondition?.name.value : input.fragments[selection.name.value]?.typeCondition.name.value;
      const target = possible.find((t) => t.name === condition) ?? first;
      const body = selection.kind === Kind.INLINE_FRAGMENT ? selection.selectionSet : input.fragments[selection.name.value]?.selectionSet;
      if (body) total += fieldsCost(walk, collection.fieldsOf(body, target), target, data, false, childSizes, path);
    }
  }
  for (const set of sharedSets) total += fieldsCost(walk, collection.fieldsOf(set, first), first, data, false, childSizes, path);
  return total;
}

/** A selection set's fields without its fragments, one node per original (so memo keys stay stable). */
const fieldsOnlySets = new WeakMap<SelectionSetNode, SelectionSetNode>();
function fieldsOnly(set: SelectionSetNode): SelectionSetNode {
  let fields = fieldsOnlySets.get(set);
  if (!fields) fieldsOnlySets.set(set, (fields = { ...set, selections: set.selections.filter((s) => s.kind === Kind.FIELD) }));
  return fields;
}

function fieldsCost(walk: Walk, fields: CollectedFields, type: GraphQLObjectType, data: unknown, isRoot: boolean, childSizes: ChildSizes | undefined, path: string): number {
  const memoised = data === undefined && !isRoot && !childSizes;
  if (memoised) {
    const known = walk.priced.get(fields);
    if (known !== undefined) return known;
  }
  let total = 0;
  for (const group of fields.values()) {
    walk.collection.spend();
    total += fieldCost(walk, group, type, data, isRoot, childSizes?.get(group.fieldName), path);
  }
  if (memoised) walk.priced.set(fields, total);
  return total;
}

function fieldCost(walk: Walk, group: FieldGroup, parent: GraphQLObjectType, parentData: unknown, isRoot: boolean, fromParent: { rest: string[]; size: number }[] | undefined, parentPath: string): number {
  const { input, rules, weights } = walk;
  const name = group.fieldName;
  const def = group.definition;
  if (name.startsWith('__') || !def) return 0;
  if (isRoot && input.skipRootFields?.has(name)) return 0;
  const measuring = parentData !== undefined;
  const responseKey = group.responseKey;
  const path = walk.refused ? (parentPath ? `${parentPath}.${responseKey}` : responseKey) : '';
  if (measuring && walk.refused?.has(path)) return 0; // refused before it did any work
  const value = measuring ? (parentData as Record<string, unknown> | null)?.[responseKey] : undefined;
  const policy = input.policies.get(`${parent.name}.${name}`);
  const named = getNamedType(def.type) as GraphQLNamedType;
  const weight = fieldWeight(walk, policy?.weight, weights.types.get(named.name), isCompositeType(named), isRoot && input.operation.operation === 'mutation' && rules.mutation === 'per-field');
  const args = def.args.length ? getArgumentValues(def, group.nodes[0], input.variables) : NO_ARGUMENTS;
  const argsCost = def.args.length ? argumentsCost(input.schema, parent.name, def, args) : 0;
  if (measuring && (value === null || value === undefined)) return weight + argsCost;

  // This field's own size, when a parent's @listSize(sizedFields) names it.
  const sizeFromParent = fromParent?.find((s) => s.rest.length === 0)?.size;
  const sizedFields = policy?.listSize?.sizedFields ?? [];
  // A connection passes its size down to the lists it names instead of multiplying itself.
  let childSizes: ChildSizes | undefined;
  const passDown = (child: string, rest: string[], size: number) => {
    childSizes ??= new Map();
    childSizes.set(child, [...(childSizes.get(child) ?? []), { rest, size }]);
  };
  if (!measuring) {
    for (const s of fromParent ?? []) if (s.rest.length) passDown(s.rest[0], s.rest.slice(1), s.size);
    if (sizedFields.length) {
      const size = listMultiplier(policy!, args, input.defaultListSize);
      for (const entry of sizedFields) {
        const [child, ...rest] = sizedPath(entry);
        if (child) passDown(child, rest, size);
      }
    }
  }
  const composite = isCompositeType(named) && group.nodes[0].selectionSet;
  const childCost = (childData: unknown, childPath: string) => (composite ? selectionCost(walk, group, named as GraphQLCompositeType, childData, childSizes, childPath) : 0);

  if (isListType(getNullableType(def.type)) && !sizedFields.length) {
    if (measuring) {
      let total = argsCost;
      const items = value as unknown[];
      for (let i = 0; i < items.length; i++) {
        walk.collection.spend();
        total += weight + childCost(items[i], walk.refused ? `${path}.${i}` : '');
      }
      return total;
    }
    const size = sizeFromParent ?? (policy?.listSize ? listMultiplier(policy, args, input.defaultListSize) : input.defaultListSize ?? DEFAULT_LIST_SIZE);
    return argsCost + size * (weight + childCost(undefined, ''));
  }
  return argsCost + weight + childCost(measuring ? value : undefined, path);
}

const NO_ARGUMENTS: Record<string, unknown> = Object.freeze({});

/** A field's own weight under the rules: its @cost and its type's, else the spec's defaults. */
function fieldWeight(walk: Walk, own: number | undefined, ofType: number | undefined, composite: boolean, rootMutation: boolean): number {
  if (own !== undefined && ofType !== undefined && walk.rules.typeWeight === 'add') return own + ofType;
  if (own !== undefined) return own;
  if (rootMutation) return DEFAULT_MUTATION_WEIGHT;
  return ofType ?? (composite ? 1 : 0);
}
