import { Kind, getNullableType, isInputObjectType, isObjectType, type GraphQLArgument, type GraphQLInputField, type GraphQLInputType, type GraphQLSchema } from 'graphql';
import { getDirective } from '@graphql-tools/utils';
import type { Window } from '../gates/field-gate';

/** Everything the gates need to know about one field, read once from the SDL at schema build. */
export type FieldPolicy = {
  coordinate: string;
  /** @rateLimit windows (own, else the object's); empty when the field is not limited. */
  windows: Window[];
  /** @cost(weight); undefined when not annotated (the operation gate applies spec defaults). */
  weight?: number;
  listSize?: { assumedSize?: number; slicingArguments: string[]; sizedFields: string[]; requireOneSlicingArgument: boolean };
};

/** The size of a list nothing else sizes (Apollo Router's `list_size`); DEFAULT_LIST_SIZE overrides it. */
export const DEFAULT_LIST_SIZE = 10;

/** Highest slicing value accepted (`first: 1000000000` is refused before anything is spent). */
export const MAX_SLICING_VALUE = 10_000;

export function readFieldPolicies(schema: GraphQLSchema): Map<string, FieldPolicy> {
  refuseRenamedDirectives(schema);
  const policies = new Map<string, FieldPolicy>();
  for (const type of Object.values(schema.getTypeMap())) {
    if (!isObjectType(type) || type.name.startsWith('__')) continue;
    const objectWindows = windowsOf(getDirective(schema, type, 'rateLimit'));
    for (const field of Object.values(type.getFields())) {
      const coordinate = `${type.name}.${field.name}`;
      const own = getDirective(schema, field, 'rateLimit');
      const cost = getDirective(schema, field, 'cost')?.[0];
      const listSize = getDirective(schema, field, 'listSize')?.[0];
      const policy: FieldPolicy = {
        coordinate,
        windows: own?.length ? windowsOf(own) : objectWindows,
        weight: cost ? Number(cost.weight) : undefined,
        listSize: listSize
          ? {
              assumedSize: listSize.assumedSize ?? undefined,
              slicingArguments: listSize.slicingArguments ?? [],
              sizedFields: listSize.sizedFields ?? [],
              requireOneSlicingArgument: listSize.requireOneSlicingArgument ?? true,
            }
          : undefined,
      };
      for (const slicing of policy.listSize?.slicingArguments ?? []) checkSlicingPath(coordinate, field.args, slicing);
      if (policy.windows.length || policy.weight !== undefined || policy.listSize) policies.set(coordinate, policy);
    }
  }
  return policies;
}

/**
 * A slicing argument may name an argument (`first`) or a path into an input object argument
 * (`input.pagination.first`), as the spec's reference implementations accept. A path that
 * leads nowhere stops the start, naming the field.
 */
function checkSlicingPath(coordinate: string, args: readonly GraphQLArgument[], slicing: string) {
  const [head, ...rest] = slicing.split('.');
  let type: GraphQLInputType | undefined = args.find((a) => a.name === head)?.type;
  if (!type) throw new Error(`@listSize on ${coordinate}: slicing argument "${slicing}" names unknown argument "${head}"`);
  for (const segment of rest) {
    const named: GraphQLInputType = getNullableType(type);
    const field: GraphQLInputField | undefined = isInputObjectType(named) ? named.getFields()[segment] : undefined;
    if (!field) throw new Error(`@listSize on ${coordinate}: slicing argument "${slicing}" has no input field "${segment}"`);
    type = field.type;
  }
}

/**
 * Federation's `@link(import: [{ name: "@cost", as: "@myCost" }])` renames the cost directives.
 * Tollgate reads them by their own names, so a rename is refused at start-up rather than
 * silently ignored.
 */
function refuseRenamedDirectives(schema: GraphQLSchema) {
  const nodes = [schema.astNode, ...schema.extensionASTNodes].filter((n) => !!n);
  for (const node of nodes) {
    for (const directive of node.directives ?? []) {
      if (directive.name.value !== 'link') continue;
      const imports = directive.arguments?.find((a) => a.name.value === 'import')?.value;
      if (imports?.kind !== Kind.LIST) continue;
      for (const item of imports.values) {
        if (item.kind !== Kind.OBJECT) continue;
        const get = (key: string) => {
          const v = item.fields.find((f) => f.name.value === key)?.value;
          return v?.kind === Kind.STRING ? v.value : undefined;
        };
        const name = get('name');
        const as = get('as');
        if (name && as && as !== name && ['@cost', '@listSize', '@rateLimit', '@requireScopes'].includes(name)) {
          throw new Error(`@link imports ${name} as ${as}: Tollgate reads ${name} by its own name; import it without "as" (renamed cost directives are not supported)`);
        }
      }
    }
  }
}

function windowsOf(directives: Record<string, any>[] | undefined): Window[] {
  const windows: Window[] = [];
  for (const d of directives ?? []) {
    const window = { limit: Number(d.limit), duration: Number(d.duration) };
    if (!(window.limit > 0 && window.duration > 0)) throw new Error(`@rateLimit needs a positive limit and duration, got ${JSON.stringify(d)}`);
    // One counter per window length: two @rateLimit with one duration count as the tighter one.
    const same = windows.find((w) => w.duration === window.duration);
    if (same) same.limit = Math.min(same.limit, window.limit);
    else windows.push(window);
  }
  return windows;
}

export class SlicingError extends Error {
  constructor(readonly argument: string, message: string) {
    super(message);
  }
}

/** The value of a slicing argument: an argument, or a path into an input object argument. */
export function slicingValue(args: Record<string, unknown>, slicing: string): unknown {
  return slicing.split('.').reduce<unknown>((value, key) => (value && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>)[key] : undefined), args);
}

/**
 * The list size a field's arguments ask for: the largest slicing value given (a number, or a
 * list argument's length — `itemsByIds(ids: [...])`), variables and schema defaults resolved;
 * else assumedSize; else the default list size. Throws SlicingError for a negative or absurd
 * value, or when requireOneSlicingArgument is broken.
 */
export function listMultiplier(policy: FieldPolicy, args: Record<string, unknown>, defaultListSize = DEFAULT_LIST_SIZE): number {
  const listSize = policy.listSize;
  if (!listSize) return 1;
  const sizes: number[] = [];
  for (const slicing of listSize.slicingArguments) {
    const value = slicingValue(args, slicing);
    if (value === undefined || value === null) continue;
    const size = Array.isArray(value) ? value.length : value;
    if (typeof size !== 'number' || !Number.isInteger(size) || size < 0 || size > MAX_SLICING_VALUE) {
      throw new SlicingError(slicing, `Argument "${slicing}" of ${policy.coordinate} must be between 0 and ${MAX_SLICING_VALUE}, got ${String(size)}.`);
    }
    sizes.push(size);
  }
  if (listSize.requireOneSlicingArgument && listSize.slicingArguments.length > 0 && sizes.length !== 1) {
    throw new SlicingError(listSize.slicingArguments.join('/'), `${policy.coordinate} needs exactly one of ${listSize.slicingArguments.join(', ')}.`);
  }
  if (sizes.length === 0) return listSize.assumedSize ?? defaultListSize;
  return Math.max(...sizes);
}

/**
 * Points one resolution of the field spends on its @rateLimit budget, from the same weights as
 * the operation budget: (field weight, else its type's, else 1) × list size + what its argument
 * values cost (input objects, @cost on arguments and input fields). Whole points.
 */
export function fieldPoints(policy: FieldPolicy, args: Record<string, unknown>, extra: { typeWeight?: number; argumentsCost?: number; defaultListSize?: number } = {}): number {
  return Math.ceil((policy.weight ?? extra.typeWeight ?? 1) * listMultiplier(policy, args, extra.defaultListSize) + (extra.argumentsCost ?? 0));
}
