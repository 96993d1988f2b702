import type { LimiterStore } from '../counting/store';
import type { Ask } from '../counting/take';
import { WindowGate, type Taken, type Window } from '../counting/window-gate';

export type { Window };

/**
 * Field-level budgets: per API key and per schema coordinate, every window of the field at once.
 * The counting (atomic over windows, one round trip per turn on Redis) is the store's take.
 */
export class FieldGate {
  private readonly gate: WindowGate;

  constructor(store: LimiterStore) {
    this.gate = new WindowGate(store, 'tg:field');
  }

  /**
   * The counter key of a key's field budget. The key id is a hash tag: on Redis Cluster every
   * counter of one API key (operation budget and field budgets) lives in one slot, so one script
   * can take them together.
   */
  static storeKey(keyId: string, coordinate: string) {
    return `${keyTag(keyId)}:${coordinate}`;
  }

  limiterFor(window: Window) {
    return this.gate.limiterFor(window);
  }

  asks(keyId: string, coordinate: string, windows: readonly Window[], points: number): Ask[] {
    return this.gate.asks(FieldGate.storeKey(keyId, coordinate), windows, points);
  }

  consume(keyId: string, coordinate: string, windows: readonly Window[], points: number): Promise<Taken> {
    return this.gate.consume(FieldGate.storeKey(keyId, coordinate), windows, points);
  }

  /** Gives back points taken by `consume` to the windows they came from (a field whose resolver refused its input). */
  async release(keyId: string, coordinate: string, windows: readonly Window[], points: number, buckets: readonly number[]): Promise<void> {
    await this.gate.release(FieldGate.storeKey(keyId, coordinate), windows, points, buckets);
  }
}

/** An API key's id as a Redis hash tag (see FieldGate.storeKey). */
export const keyTag = (keyId: string) => `{${keyId}}`;
