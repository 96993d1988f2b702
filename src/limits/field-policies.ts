import { isObjectType, type GraphQLSchema } from 'graphql';
import { getDirective } from '@graphql-tools/utils';
import type { Window } from './field-gate';

/** Everything the gates need to know about one field, read once from the SDL at schema build. */
export type FieldPolicy = {
  coordinate: string;
  /** @rateLimit windows (own, else the object's); empty when the field is not limited. */
  windows: Window[];
  /** @cost(weight); undefined when not annotated (the operation gate applies spec defaults). */
  weight?: number;
  listSize?: { assumedSize?: number; slicingArguments: string[]; sizedFields: string[]; requireOneSlicingArgument: boolean };
};

/** Highest slicing value accepted (`first: 1000000000` is refused before anything is spent). */
export const MAX_SLICING_VALUE = 10_000;

export function readFieldPolicies(schema: GraphQLSchema): Map<string, FieldPolicy> {
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
      for (const arg of policy.listSize?.slicingArguments ?? []) {
        if (!field.args.some((a) => a.name === arg)) throw new Error(`@listSize on ${coordinate} names unknown argument "${arg}"`);
      }
      if (policy.windows.length || policy.weight !== undefined || policy.listSize) policies.set(coordinate, policy);
    }
  }
  return policies;
}

function windowsOf(directives: Record<string, any>[] | undefined): Window[] {
  return (directives ?? []).map((d) => {
    const window = { limit: Number(d.limit), duration: Number(d.duration) };
    if (!(window.limit > 0 && window.duration > 0)) throw new Error(`@rateLimit needs a positive limit and duration, got ${JSON.stringify(d)}`);
    return window;
  });
}

export class SlicingError extends Error {
  constructor(readonly argument: string, message: string) {
    super(message);
  }
}

/**
 * The list size a field's arguments ask for: the largest slicing argument given (schema
 * defaults are already applied by graphql-js), else assumedSize, else 1. Throws SlicingError for
 * a negative or absurd value, or when requireOneSlicingArgument is broken.
 */
export function listMultiplier(policy: FieldPolicy, args: Record<string, unknown>): number {
  const listSize = policy.listSize;
  if (!listSize) return 1;
  const given = listSize.slicingArguments.filter((name) => args[name] !== undefined && args[name] !== null);
  for (const name of given) {
    const value = args[name] as number;
    if (!Number.isInteger(value) || value < 0 || value > MAX_SLICING_VALUE) {
      throw new SlicingError(name, `Argument "${name}" of ${policy.coordinate} must be between 0 and ${MAX_SLICING_VALUE}, got ${value}.`);
    }
  }
  if (listSize.requireOneSlicingArgument && listSize.slicingArguments.length > 0 && given.length !== 1) {
    throw new SlicingError(listSize.slicingArguments.join('/'), `${policy.coordinate} needs exactly one of ${listSize.slicingArguments.join(', ')}.`);
  }
  if (given.length === 0) return listSize.assumedSize ?? 1;
  return Math.max(...given.map((name) => args[name] as number));
}

/** Points one resolution of the field spends on its @rateLimit budget: weight × list size, whole. */
export function fieldPoints(policy: FieldPolicy, args: Record<string, unknown>): number {
  return Math.ceil((policy.weight ?? 1) * listMultiplier(policy, args));
}
