import { getArgumentValues, type GraphQLObjectType, type GraphQLResolveInfo } from 'graphql';
import type { FieldGroup } from '../document/collect-fields';
import type { AuthenticatedKey } from '../keys/types';
import type { Window } from '../gates/field-gate';
import type { GroupOutcome } from '../counting/take';
import type { FieldLimits } from './field-limits';

/**
 * Prepaid: points taken before execution. The limited root fields of an operation are taken in
 * the same store take as the operation's own budget (one round trip instead of one more when
 * execution reaches them); each then resolves with what its part of the take decided.
 */

/** A limited root field's points, taken before execution, by its response key. */
export type PrepaidField = { responseKey: string; coordinate: string; windows: readonly Window[]; points: number };
/** A prepaid field, what the take said of it, and the bucket each of its windows took from (for a give-back). */
export type Prepaid = { field: PrepaidField; outcome: GroupOutcome; buckets: readonly number[]; released?: boolean };

export type PrepayRootFields = (apiKey: AuthenticatedKey, rootType: GraphQLObjectType, fields: readonly FieldGroup[], variables: Record<string, unknown>) => PrepaidField[];

/**
 * The root fields to prepay: limited ones the caller may call with arguments that make sense.
 * Fields the caller lacks the scope for, or whose arguments are bad, are left to execution
 * (which refuses them without spending).
 */
export function prepayRootFields(limits: FieldLimits, requiredScopes: ReadonlyMap<string, readonly string[]>): PrepayRootFields {
  return (key, rootType, fields, variables) => {
    const prepaid: PrepaidField[] = [];
    for (const group of fields) {
      const field = group.definition;
      if (!field) continue;
      const coordinate = `${rootType.name}.${group.fieldName}`;
      const windows = limits.windowsFor(key.id, coordinate);
      if (!windows.length) continue;
      if ((requiredScopes.get(coordinate) ?? []).some((s) => !key.scopes.includes(s))) continue;
      let points: number;
      try {
        points = limits.pointsFor(coordinate, field.args.length ? getArgumentValues(field, group.nodes[0], variables) : NO_ARGUMENTS, key.id, rootType);
      } catch {
        continue;
      }
      if (points > 0) prepaid.push({ responseKey: group.responseKey, coordinate, windows, points });
    }
    return prepaid;
  };
}

/** What the field gate reads from a resolver's context about prepaid root fields. */
export type PrepaidContext = { admission?: { prepaid?: Map<string, Prepaid> } };

/** A root field's prepaid points, found by its response key (only root fields are prepaid). */
export function prepaidOf(context: PrepaidContext, info: GraphQLResolveInfo): Prepaid | undefined {
  return info.path.prev === undefined ? context.admission?.prepaid?.get(info.path.key as string) : undefined;
}

const NO_ARGUMENTS: Record<string, unknown> = Object.freeze({});
