import {
  GraphQLIncludeDirective, GraphQLSkipDirective, Kind, getDirectiveValues, isAbstractType,
  type DirectiveNode, type FieldNode, type FragmentDefinitionNode, type GraphQLField, type GraphQLObjectType, type GraphQLSchema,
  type SelectionSetNode,
} from 'graphql';

/**
 * One field of a selection, as graphql-js executes it: every field node with the same response
 * key merged into one group (`{ a a }`, `{ ...F ...F }` and a field repeated through fragments
 * resolve once), @skip/@include applied, fragments resolved against the runtime type.
 */
export type FieldGroup = {
  responseKey: string;
  fieldName: string;
  /** The merged nodes, in document order; they share name and arguments (validation says so). */
  nodes: FieldNode[];
  /** undefined for a field the type does not have (`__typename`, or a bad document). */
  definition: GraphQLField<unknown, unknown> | undefined;
};
/** A selection set collected on one object type, by response key, in document order. */
export type CollectedFields = ReadonlyMap<string, FieldGroup>;

/** Thrown when reading a document would take more work than the budget allows. */
export class DocumentTooComplex extends Error {
  constructor(readonly budget: number) {
    super(`This operation's document takes more than ${budget} steps to read; simplify it (fewer fragment spreads or repeated selections).`);
  }
}

/**
 * The field collection of one operation under one set of variables — graphql-js's
 * `collectFields`/`collectSubfields` (execution/collectFields.ts), with two differences that
 * bound the work whatever the document looks like:
 *  - subfields are memoised by (the selection sets merged, the runtime type), not by the path
 *    that reached them: a fragment spread under many fields is collected once per type, so the
 *    work is linear in the document's size, not in the size of its expansion;
 *  - every selection visited spends one step of a budget; past it DocumentTooComplex is thrown
 *    (the combinations of repeated response keys that memoising cannot share are bounded too).
 * Collection is lazy: only what a reader asks for is collected.
 */
export class FieldCollection {
  private steps = 0;
  private budget: number;
  private readonly memo = new Map<string, CollectedFields>();

  constructor(
    readonly schema: GraphQLSchema,
    readonly fragments: Readonly<Record<string, FragmentDefinitionNode>>,
    readonly variables: Record<string, unknown>,
    budget: number,
  ) {
    this.budget = budget;
  }

  /**
   * Starts one reading of the operation (pricing it, measuring a response) with its own budget.
   * What earlier readings collected stays memoised and costs nothing again.
   */
  beginPass(budget: number): void {
    this.steps = 0;
    this.budget = budget;
  }

  /** Steps the current reading has spent. */
  get spentSteps(): number {
    return this.steps;
  }

  /** Spends one step of the budget; readers of the collection (the cost walk) spend theirs here too. */
  spend(): void {
    if (++this.steps > this.budget) throw new DocumentTooComplex(this.budget);
  }

  /** The fields of a selection set on an object type (the operation's root selection set, say). */
  fieldsOf(selectionSet: SelectionSetNode, type: GraphQLObjectType): CollectedFields {
    return this.collect([selectionSet], type);
  }

  /** The subfields of a group on one of its possible runtime types. */
  subfields(group: FieldGroup, type: GraphQLObjectType): CollectedFields {
    const sets: SelectionSetNode[] = [];
    for (const node of group.nodes) if (node.selectionSet) sets.push(node.selectionSet);
    return this.collect(sets, type);
  }

  private collect(sets: readonly SelectionSetNode[], type: GraphQLObjectType): CollectedFields {
    let memoKey = type.name;
    for (const set of sets) memoKey += `,${idOf(set)}`;
    let fields = this.memo.get(memoKey);
    if (fields) return fields;
    const collected = new Map<string, FieldGroup>();
    const visitedFragments = new Set<string>();
    for (const set of sets) this.collectInto(set, type, collected, visitedFragments);
    this.memo.set(memoKey, (fields = collected));
    return fields;
  }

  private collectInto(set: SelectionSetNode, type: GraphQLObjectType, fields: Map<string, FieldGroup>, visitedFragments: Set<string>): void {
    for (const selection of set.selections) {
      this.spend();
      if (!included(selection, this.variables)) continue;
      if (selection.kind === Kind.FIELD) {
        const responseKey = selection.alias?.value ?? selection.name.value;
        const group = fields.get(responseKey);
        if (group) group.nodes.push(selection);
        else fields.set(responseKey, { responseKey, fieldName: selection.name.value, nodes: [selection], definition: type.getFields()[selection.name.value] });
      } else if (selection.kind === Kind.INLINE_FRAGMENT) {
        if (selection.typeCondition && !appliesTo(this.schema, selection.typeCondition.name.value, type)) continue;
        this.collectInto(selection.selectionSet, type, fields, visitedFragments);
      } else {
        // graphql-js's rule: a fragment spread twice in one selection is collected once.
        const name = selection.name.value;
        if (visitedFragments.has(name)) continue;
        visitedFragments.add(name);
        const fragment = this.fragments[name];
        if (!fragment || !appliesTo(this.schema, fragment.typeCondition.name.value, type)) continue;
        this.collectInto(fragment.selectionSet, type, fields, visitedFragments);
      }
    }
  }
}

/** A stable small id per selection set node, for memo keys (the nodes are immutable and shared by parsed documents). */
const ids = new WeakMap<SelectionSetNode, number>();
let nextId = 0;
function idOf(set: SelectionSetNode): number {
  let id = ids.get(set);
  if (id === undefined) ids.set(set, (id = nextId++));
  return id;
}

export function included(node: { directives?: readonly DirectiveNode[] }, variables: Record<string, unknown>): boolean {
  if (!node.directives?.length) return true;
  const skip = getDirectiveValues(GraphQLSkipDirective, node, variables);
  if (skip?.if === true) return false;
  const include = getDirectiveValues(GraphQLIncludeDirective, node, variables);
  return include?.if !== false;
}

/** Whether a fragment with this type condition applies to an object of `type` (graphql-js's doesFragmentConditionMatch). */
export function appliesTo(schema: GraphQLSchema, typeCondition: string, type: GraphQLObjectType): boolean {
  if (typeCondition === type.name) return true;
  const conditionType = schema.getType(typeCondition);
  return !!conditionType && isAbstractType(conditionType) && schema.isSubType(conditionType, type);
}
