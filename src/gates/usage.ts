import { FieldGate, type Window } from './field-gate';
import type { FieldPolicy } from '../directives/field-policies';
import type { LimitOverride } from '../db/schema';
import type { LimiterStore } from '../counting/store';

export type FieldUsage = { coordinate: string; limit: number; duration: number; remaining: number; resetAt: Date | null };

/** Reads a key's remaining field budgets without spending them (a store read, never a take). */
export class FieldUsageReader {
  constructor(
    private readonly store: LimiterStore,
    private readonly gate: FieldGate,
    private policies: ReadonlyMap<string, FieldPolicy>,
  ) {}

  /** The policies of the schema in use (set when Tollgate builds it). */
  use(policies: ReadonlyMap<string, FieldPolicy>) {
    this.policies = policies;
  }

  async forKey(keyId: string, overrides: readonly LimitOverride[]): Promise<FieldUsage[]> {
    const rows: { coordinate: string; window: Window }[] = [];
    for (const policy of this.policies.values()) {
      const own = overrides.filter((o) => o.coordinate === policy.coordinate);
      const windows = own.length ? own : policy.windows;
      for (const window of windows) rows.push({ coordinate: policy.coordinate, window: { limit: window.limit, duration: window.duration } });
    }
    return Promise.all(
      rows.map(async ({ coordinate, window }) => {
        const state = await this.store.read(this.gate.limiterFor(window), FieldGate.storeKey(keyId, coordinate)).catch(() => null);
        return {
          coordinate,
          limit: window.limit,
          duration: window.duration,
          remaining: Math.max(0, window.limit - (state?.used ?? 0)),
          // When the current bucket ends (what it holds then fades); null when nothing is spent.
          resetAt: state && state.used > 0 ? new Date(Date.now() + state.msLeft) : null,
        };
      }),
    );
  }
}
