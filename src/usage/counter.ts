/** What one operation of a key did, as the response leaves it (graphql/plugin.ts builds it). */
export type OperationUsage = {
  /** Refused whole by a gate before anything ran (budget, quota, IP…): then nothing else counts. */
  refused: boolean;
  /** Points the operation kept (net, after its refund) and the points given back. */
  points: number;
  refunded: number;
  /** The response carried an error that was not a gate's refusal. */
  error: boolean;
  /** Each refusal in the response: the operation's gate, or a field's (with its coordinate). */
  refusals: readonly { gate: string; coordinate?: string }[];
  /** Per field coordinate: resolutions, points kept, refusals. */
  fields: readonly { coordinate: string; calls: number; points: number; refused: number }[];
};

export type FieldCounts = { calls: number; points: number; refused: number };

/** One key's counts in one minute: what a flush writes as one row (and a row per field and refusal). */
export type KeyMinute = {
  keyId: string;
  consumerId: string | null;
  /** Minutes since the epoch. */
  minute: number;
  operations: number;
  refused: number;
  points: number;
  refunded: number;
  errors: number;
  fields: Map<string, FieldCounts>;
  /** By `gate` + NUL + coordinate ('' for the whole operation). */
  refusals: Map<string, number>;
};

/**
 * Usage counted in memory on the request path: a Map lookup and a few additions per operation,
 * no I/O. The writer (writer.ts) drains it every few seconds and adds the counts in Postgres.
 */
export class UsageCounter {
  private minute = -1;
  private current = new Map<string, KeyMinute>();
  /** Minutes that ended since the last drain. */
  private ended: KeyMinute[] = [];

  constructor(private readonly now: () => number = Date.now) {}

  record(key: { id: string; consumerId: string | null }, operation: OperationUsage): void {
    const minute = Math.floor(this.now() / 60_000);
    if (minute !== this.minute) {
      for (const counts of this.current.values()) this.ended.push(counts);
      this.current = new Map();
      this.minute = minute;
    }
    let counts = this.current.get(key.id);
    if (counts && counts.consumerId !== key.consumerId) {
      // Moved to another consumer within the minute: what came before stays its old consumer's.
      this.ended.push(counts);
      counts = undefined;
    }
    if (!counts) {
      counts = { keyId: key.id, consumerId: key.consumerId, minute, operations: 0, refused: 0, points: 0, refunded: 0, errors: 0, fields: new Map(), refusals: new Map() };
      this.current.set(key.id, counts);
    }
    if (operation.refused) counts.refused++;
    else counts.operations++;
    counts.points += operation.points;
    counts.refunded += operation.refunded;
    if (operation.error) counts.errors++;
    for (const refusal of operation.refusals) {
      const name = `${refusal.gate}\u0000${refusal.coordinate ?? ''}`;
      counts.refusals.set(name, (counts.refusals.get(name) ?? 0) + 1);
    }
    for (const field of operation.fields) {
      const total = counts.fields.get(field.coordinate);
      if (total) {
        total.calls += field.calls;
        total.points += field.points;
        total.refused += field.refused;
      } else counts.fields.set(field.coordinate, { calls: field.calls, points: field.points, refused: field.refused });
    }
  }

  /** Everything counted since the last drain, taken out of the counter. */
  drain(): KeyMinute[] {
    const rows = this.ended;
    for (const counts of this.current.values()) rows.push(counts);
    this.ended = [];
    this.current = new Map();
    return rows;
  }
}
