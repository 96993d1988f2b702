import { createHash } from 'node:crypto';
import {
  Kind, getArgumentValues, visit, type DocumentNode, type FragmentDefinitionNode, type GraphQLObjectType, type GraphQLSchema,
  type OperationDefinitionNode,
} from 'graphql';
import { LRUCache } from 'lru-cache';
import type { FieldPolicy } from '../directives/field-policies';
import { FieldCollection, type FieldGroup } from './collect-fields';
import { requestedCost, rootTypeOf, type CostInput, type CostRules } from './operation-cost';

/** The free status field: never counted, and with dryRun the only thing executed. */
export const STATUS_FIELD = 'rateLimit';
const FREE_ROOT_FIELDS = new Set([STATUS_FIELD]);

/**
 * Everything the gates read from one operation, read once: its field collection (collect-fields.ts),
 * what it costs, its root fields merged by response key (the limited ones are taken with the
 * operation's budget), its status fields and whether it is a dry run. No gate reads the
 * document any other way.
 */
export type OperationAnalysis = {
  rootType: GraphQLObjectType;
  /** Root fields as they will execute: merged by response key, @skip/@include applied, fragments resolved. */
  rootFields: FieldGroup[];
  /** Root fields that are the status field (`rateLimit`), under any response key. */
  statusFields: FieldGroup[];
  dryRun: boolean;
  cost: number;
  /** What actualCost needs to measure the response with the same collection. */
  costInput: CostInput;
};

export type AnalysisOptions = {
  schema: GraphQLSchema;
  document: DocumentNode;
  operation: OperationDefinitionNode;
  /** Coerced variable values. */
  variables: Record<string, unknown>;
  policies: ReadonlyMap<string, FieldPolicy>;
  rules?: CostRules;
  defaultListSize?: number;
  /** Steps one reading of the document may take (MAX_QUERY_STEPS). */
  stepBudget: number;
};

/** Throws DocumentTooComplex past the step budget, SlicingError for a bad slicing argument. */
export function analyseOperation(options: AnalysisOptions): OperationAnalysis {
  const { schema, operation, variables } = options;
  const shape = shapeOf(options.document, operation);
  const rootType = rootTypeOf(schema, operation);
  if (!rootType) throw new Error(`The schema has no ${operation.operation} type.`);
  // The collection depends on variables only through @skip/@include: without such a variable
  // it is the same for every request of this operation, and kept with it.
  let collection = shape.collection;
  if (!collection) {
    collection = new FieldCollection(schema, shape.fragments, variables, options.stepBudget);
    if (!shape.variableDirectives) shape.collection = collection;
  }
  collection.beginPass(options.stepBudget);
  const rootFields = [...collection.fieldsOf(operation.selectionSet, rootType).values()];
  const statusFields = operation.operation === 'query' ? rootFields.filter((group) => group.fieldName === STATUS_FIELD) : [];
  const costInput: CostInput = {
    schema, operation, fragments: shape.fragments, variables, policies: options.policies, skipRootFields: FREE_ROOT_FIELDS,
    defaultListSize: options.defaultListSize, rules: options.rules, collection,
  };
  return { rootType, rootFields, statusFields, dryRun: isDryRun(statusFields, variables), cost: pricedOnce(shape, costInput), costInput };
}

/** A dry run: some status field asks for one (`rateLimit(dryRun: true)`, or through a variable). */
function isDryRun(statusFields: readonly FieldGroup[], variables: Record<string, unknown>): boolean {
  return statusFields.some((group) => group.definition && getArgumentValues(group.definition, group.nodes[0], variables).dryRun === true);
}

/**
 * What an operation's document says before any variable is known, worked out once per parsed
 * operation: Apollo reuses the parsed document of a repeated query, so a busy API reads each
 * query shape once.
 */
type OperationShape = {
  id: number;
  fragments: Record<string, FragmentDefinitionNode>;
  hasVariables: boolean;
  /** Some @skip/@include takes a variable: the collection differs per request. */
  variableDirectives: boolean;
  collection?: FieldCollection;
};
const shapes = new WeakMap<OperationDefinitionNode, OperationShape>();
let nextShapeId = 0;

function shapeOf(document: DocumentNode, operation: OperationDefinitionNode): OperationShape {
  let shape = shapes.get(operation);
  if (!shape) {
    shape = { id: nextShapeId++, fragments: fragmentsOf(document), hasVariables: !!operation.variableDefinitions?.length, variableDirectives: false };
    if (shape.hasVariables) shape.variableDirectives = hasVariableDirectives(document);
    shapes.set(operation, shape);
  }
  return shape;
}

function hasVariableDirectives(document: DocumentNode): boolean {
  let found = false;
  visit(document, {
    Directive(node) {
      if ((node.name.value === 'skip' || node.name.value === 'include') && node.arguments?.some((a) => a.value.kind === Kind.VARIABLE)) found = true;
    },
  });
  return found;
}

/**
 * Prices by operation and variables, bounded in bytes whatever clients send: the variables are
 * kept as a hash (short ones as they are), and variables too large to be worth keeping are
 * priced every time (the price is the same; only its reuse is skipped).
 */
const PRICE_CACHE_BYTES = 1 << 20;
const LARGEST_CACHED_VARIABLES = 16 * 1024;
const SHORT_KEY = 64;
const prices = new LRUCache<string, number>({ maxSize: PRICE_CACHE_BYTES, sizeCalculation: (_value, key) => key.length * 2 + 48 });

/** What the price cache holds, in bytes as it counts them (for tests and metrics). */
export function priceCacheBytes(): number {
  return prices.calculatedSize;
}

function pricedOnce(shape: OperationShape, input: CostInput): number {
  let key = `${shape.id}`;
  if (shape.hasVariables) {
    const json = JSON.stringify(input.variables);
    if (json.length > LARGEST_CACHED_VARIABLES) return requestedCost(input);
    key += `:${json.length <= SHORT_KEY ? json : createHash('sha1').update(json).digest('base64')}`;
  }
  let cost = prices.get(key);
  if (cost === undefined) prices.set(key, (cost = requestedCost(input)));
  return cost;
}

export function fragmentsOf(document: DocumentNode): Record<string, FragmentDefinitionNode> {
  const fragments: Record<string, FragmentDefinitionNode> = {};
  for (const d of document.definitions) if (d.kind === Kind.FRAGMENT_DEFINITION) fragments[d.name.value] = d;
  return fragments;
}

/** The operation with only its status fields (a dry run executes nothing else); its fragments stay. */
export function onlyStatusFields(document: DocumentNode, operation: OperationDefinitionNode, statusFields: readonly FieldGroup[]): DocumentNode {
  return {
    kind: Kind.DOCUMENT,
    definitions: [
      { ...operation, selectionSet: { ...operation.selectionSet, selections: statusFields.flatMap((group) => group.nodes) } },
      ...document.definitions.filter((d) => d.kind === Kind.FRAGMENT_DEFINITION),
    ],
  };
}
