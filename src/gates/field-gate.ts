import type { LimiterStore } from '../counting/store';
import type { Ask } from '../counting/take';
import { WindowGate, type Taken, type Window } from '../counting/window-gate';

export type { Window };

/** Whose counters a key's requests spend: the key, and its owner (its consumer, or itself). */
export type KeyIdentity = { readonly id: string; readonly owner: string };

/**
 * Field-level budgets: per owner (a key, or a consumer shared by its keys) and per schema
 * coordinate, every window of the field at once, with a key's own caps under its consumer in the
 * same take. The counting (atomic over windows, one round trip per turn on Redis) is the store's take.
 */
export class FieldGate {
  private readonly gate: WindowGate;

  constructor(store: LimiterStore) {
    this.gate = new WindowGate(store, 'tg:field');
  }

  /** The counter keys of a key's field budget: the owner's, and the key's own cap's (one hash slot: see keyTag). */
  static storeKeys(key: KeyIdentity, coordinate: string): [owner: string, cap: string] {
    const [owner, cap] = budgetCounterKeys(key);
    return [`${owner}:${coordinate}`, `${cap}:${coordinate}`];
  }

  limiterFor(window: Window) {
    return this.gate.limiterFor(window);
  }

  asks(key: KeyIdentity, coordinate: string, windows: readonly Window[], points: number): Ask[] {
    const [owner, cap] = FieldGate.storeKeys(key, coordinate);
    return this.gate.asks(owner, windows, points, cap);
  }

  consume(key: KeyIdentity, coordinate: string, windows: readonly Window[], points: number): Promise<Taken> {
    const [owner, cap] = FieldGate.storeKeys(key, coordinate);
    return this.gate.consume(owner, windows, points, cap);
  }

  /** Gives back points taken by `consume` to the windows they came from (a field whose resolver refused its input). */
  async release(key: KeyIdentity, coordinate: string, windows: readonly Window[], points: number, buckets: readonly number[]): Promise<void> {
    const [owner, cap] = FieldGate.storeKeys(key, coordinate);
    await this.gate.release(owner, windows, points, buckets, cap);
  }
}

/**
 * An owner's id as a Redis hash tag: on Redis Cluster every counter of one owner (operation budget
 * and field budgets, and its keys' caps) lives in one slot, so one script can take them together.
 */
export const keyTag = (id: string) => `{${id}}`;

/** Where a key's operation budget counters are: the owner's, and the key's own caps under its owner. */
export function budgetCounterKeys(key: KeyIdentity): [owner: string, cap: string] {
  const owner = keyTag(key.owner);
  return [owner, key.owner === key.id ? owner : `${owner}:k:${key.id}`];
}
