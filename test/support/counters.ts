import type { LimiterStore } from '../../src/counting/store';
import type { CounterState } from '../../src/counting/take';

/** A window counter as the store holds it (`prefix` as the gates name it: tg:budget, tg:field, tg:ip), read without taking. */
export function counterState(store: LimiterStore, prefix: string, duration: number, key: string): Promise<CounterState> {
  return store.read(store.counters({ keyPrefix: `${prefix}:${duration}s`, points: 0, duration }), key);
}
