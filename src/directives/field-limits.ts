import { getNamedType, type GraphQLField, type GraphQLObjectType, type GraphQLSchema } from 'graphql';
import { LRUCache } from 'lru-cache';
import { argumentsCost, costWeights } from '../document/operation-cost';
import { badUserInput } from '../errors';
import type { AuthenticatedKey } from '../keys/types';
import type { Window } from '../gates/field-gate';
import { SlicingError, fieldPoints, slicingValue, type FieldPolicy } from './field-policies';

/**
 * What a field's @rateLimit asks of one key: its windows (the SDL's, or the key's own overrides)
 * and the points one resolution spends (the same weights as the operation budget).
 */
export class FieldLimits {
  // Keys with per-coordinate overrides or caps, as last authenticated (refreshed with the key cache).
  private readonly overrides = new LRUCache<string, Pick<AuthenticatedKey, 'limits' | 'limitCaps'>>({ max: 100_000 });

  constructor(
    private readonly schema: GraphQLSchema,
    readonly policies: ReadonlyMap<string, FieldPolicy>,
    private readonly defaultListSize?: number,
  ) {}

  /** A field's windows for a key: its owner's overrides or the schema's, then the key's own caps. */
  windowsFor(keyId: string, coordinate: string): readonly Window[] {
    const key = this.overrides.get(keyId);
    const windows = key?.limits.get(coordinate) ?? this.policies.get(coordinate)?.windows ?? [];
    const caps = key?.limitCaps.get(coordinate);
    return caps ? [...windows, ...caps] : windows;
  }

  rememberKey(key: AuthenticatedKey): void {
    if (key.limits.size > 0 || key.limitCaps.size > 0) this.overrides.set(key.id, { limits: key.limits, limitCaps: key.limitCaps });
    else if (this.overrides.has(key.id)) this.overrides.delete(key.id);
  }

  /** Points one resolution spends; throws BAD_USER_INPUT for absurd or never-admissible asks. */
  pointsFor(coordinate: string, fieldArgs: Record<string, unknown>, keyId: string, parent: GraphQLObjectType): number {
    const policy = this.policies.get(coordinate);
    if (!policy) return 1;
    const field = parent.getFields()[coordinate.slice(parent.name.length + 1)] as GraphQLField<unknown, unknown>;
    let points: number;
    try {
      points = fieldPoints(policy, fieldArgs, {
        typeWeight: costWeights(this.schema).types.get(getNamedType(field.type).name),
        argumentsCost: argumentsCost(this.schema, parent.name, field, fieldArgs),
        defaultListSize: this.defaultListSize,
      });
    } catch (error) {
      if (error instanceof SlicingError) throw badUserInput(error.message, error.argument);
      throw error;
    }
    // A request no window could ever admit is a bad request, not a reason to spend a budget.
    let smallest = Infinity;
    for (const window of this.windowsFor(keyId, coordinate)) smallest = Math.min(smallest, window.limit);
    if (points > smallest) {
      // Say which arguments asked for so much: usually one the field would refuse anyway
      // (`forecast(days: 30)` where 1..14 is documented), and the client should fix that, not wait.
      const sizedBy = (policy.listSize?.slicingArguments ?? []).filter((name) => slicingValue(fieldArgs, name) != null);
      const shown = sizedBy.map((name) => `${name}: ${JSON.stringify(slicingValue(fieldArgs, name))}`).join(', ');
      throw badUserInput(
        `${coordinate} asks for ${points} points${shown ? ` with ${shown}` : ' here'}, but its budget is ${smallest} points per window: check ${sizedBy.length ? 'that argument against the field\'s documentation' : 'its arguments'}.`,
        sizedBy[0],
      );
    }
    return points;
  }
}
