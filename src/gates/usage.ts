import { FieldGate, type Window } from './field-gate';
import type { FieldPolicy } from '../directives/field-policies';
import type { AuthenticatedKey } from '../keys/types';
import type { LimiterStore } from '../counting/store';

export type FieldUsage = { coordinate: string; limit: number; duration: number; cap: boolean; remaining: number; resetAt: Date | null };

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

  /** Every field window that applies to the key: its owner's (shared with the consumer's other keys), then its own caps. */
  async forKey(key: AuthenticatedKey): Promise<FieldUsage[]> {
    const rows: { coordinate: string; window: Window }[] = [];
    for (const policy of this.policies.values()) {
      const windows = [...(key.limits.get(policy.coordinate) ?? policy.windows), ...(key.limitCaps.get(policy.coordinate) ?? [])];
      for (const window of windows) rows.push({ coordinate: policy.coordinate, window });
    }
    return Promise.all(
      rows.map(async ({ coordinate, window }) => {
        const [owner, cap] = FieldGate.storeKeys(key, coordinate);
        const state = await this.store.read(this.gate.limiterFor(window), window.cap ? cap : owner).catch(() => null);
        return {
          coordinate,
          limit: window.limit,
          duration: window.duration,
          cap: !!window.cap,
          remaining: Math.max(0, window.limit - (state?.used ?? 0)),
          // When the current bucket ends (what it holds then fades); null when nothing is spent.
          resetAt: state && state.used > 0 ? new Date(Date.now() + state.msLeft) : null,
        };
      }),
    );
  }
}
