import type { Prepaid } from '../directives/prepay';
import type { FieldCharge } from '../directives/rate-limit-directive';
import type { OperationUsage } from './counter';

type ResponseError = { path?: readonly (string | number)[]; extensions?: Record<string, unknown> };

/**
 * What one operation did, read from what the client was answered (so the history says what the
 * client saw): refusals by their error's gate, points as the operation's settle left them, fields
 * from what the field gate charged.
 */
export function operationUsage(input: {
  cost: { prepaid?: number; actual?: number };
  errors: readonly ResponseError[] | undefined;
  /** Limited root fields taken with the operation. */
  prepaid: ReadonlyMap<string, Prepaid> | undefined;
  /** Limited fields charged while resolving. */
  charges: Iterable<FieldCharge> | undefined;
}): OperationUsage {
  const refusals: { gate: string; coordinate?: string }[] = [];
  let refused = false;
  let error = false;
  for (const e of input.errors ?? NONE) {
    const gate = gateOf(e);
    if (!gate) {
      error = true;
      continue;
    }
    refusals.push(gate);
    // A gate's refusal of the whole operation carries no path: nothing ran.
    if (!e.path && gate.coordinate === undefined) refused = true;
  }
  const prepaid = input.cost.prepaid ?? 0;
  const kept = Math.min(prepaid, input.cost.actual ?? prepaid);
  const fields = new Map<string, { coordinate: string; calls: number; points: number; refused: number }>();
  const field = (coordinate: string) => {
    let counts = fields.get(coordinate);
    if (!counts) fields.set(coordinate, (counts = { coordinate, calls: 0, points: 0, refused: 0 }));
    return counts;
  };
  for (const { field: root, outcome, released } of input.prepaid?.values() ?? NONE) {
    if (!outcome.ok) continue; // counted from its error below
    const counts = field(root.coordinate);
    counts.calls++;
    if (!released) counts.points += root.points;
  }
  for (const charge of input.charges ?? NONE) {
    if (!charge.buckets) continue; // refused: counted from its error
    const counts = field(charge.coordinate);
    counts.calls++;
    if (!charge.released) counts.points += charge.points;
  }
  for (const refusal of refusals) if (refusal.coordinate) field(refusal.coordinate).refused++; // by its budget or its scope
  return { refused, points: refused ? 0 : kept, refunded: refused ? 0 : prepaid - kept, error, refusals, fields: [...fields.values()] };
}

/** The gate an error is a refusal of, or null for an error that is not a refusal. */
function gateOf(error: ResponseError): { gate: string; coordinate?: string } | null {
  const ext = error.extensions ?? {};
  const coordinate = typeof ext.coordinate === 'string' ? ext.coordinate : undefined;
  switch (ext.code) {
    case 'RATE_LIMITED':
      if (coordinate) return { gate: 'field', coordinate };
      if (ext.gate === 'operation') return { gate: ext.period ? 'quota' : ext.cap ? 'key-cap' : 'budget' };
      return { gate: typeof ext.gate === 'string' ? ext.gate : 'rate-limit' };
    case 'QUERY_TOO_COMPLEX':
      return { gate: 'too-complex' };
    case 'FORBIDDEN':
      return coordinate ? { gate: 'scope', coordinate } : { gate: 'scope' };
    case 'SERVICE_UNAVAILABLE':
      // The budget could not be decided (store down, closed mode): refused whole, not an error of the API's.
      return error.path ? null : { gate: 'unavailable' };
    default:
      return null;
  }
}

const NONE: readonly never[] = [];
