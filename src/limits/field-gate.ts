import { CoalescingGate, type Window } from './coalescing-gate';
import type { LimiterStore } from './store';

export type { Window };

/**
 * Field-level budgets: per API key and per schema coordinate, every window of the field at once.
 * The counting (coalescing, exact splitting, multi-window rollback) is CoalescingGate's.
 */
export class FieldGate {
  private readonly gate: CoalescingGate;

  constructor(store: LimiterStore) {
    this.gate = new CoalescingGate(store, 'tg:field');
  }

  static storeKey(keyId: string, coordinate: string) {
    return `${keyId}:${coordinate}`;
  }

  /** Store calls made, for tests and the bench (they do not grow with list length). */
  get storeCalls() {
    return this.gate.storeCalls;
  }

  limiterFor(window: Window) {
    return this.gate.limiterFor(window);
  }

  async consume(keyId: string, coordinate: string, windows: readonly Window[], points: number): Promise<void> {
    await this.gate.consume(FieldGate.storeKey(keyId, coordinate), windows, points);
  }

  /** Gives back points taken by `consume` (a pre-charged field whose operation was refused). */
  async release(keyId: string, coordinate: string, windows: readonly Window[], points: number): Promise<void> {
    await Promise.all(windows.map((w) => this.gate.limiterFor(w).reward(FieldGate.storeKey(keyId, coordinate), points).catch(() => undefined)));
  }
}
