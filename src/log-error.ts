/**
 * How an error appears in a log line: its type and message (and its code, when a driver gave
 * one), so a line says what kind of failure it was, not only what it said. `stack` only where the
 * error itself is logged (`{ err: error }`: the unexpected ones); an expected operational failure
 * (Redis down, a webhook refused) is logged through `errorFields`, without one.
 */
export function serializeError(error: unknown): unknown {
  if (!(error instanceof Error)) return error;
  return { ...errorFields(error), stack: error.stack };
}

/** `{ type, message, code? }` of anything thrown; `message` replaces the error's own (a described cause). */
export function errorFields(error: unknown, message?: string): { type: string; message: string; code?: string } {
  const e = error as { name?: unknown; message?: unknown; code?: unknown; constructor?: { name?: unknown } } | null | undefined;
  const type = error instanceof Error ? (e!.name !== 'Error' ? String(e!.name) : String(e!.constructor?.name ?? 'Error')) : typeof error;
  const code = typeof e?.code === 'string' || typeof e?.code === 'number' ? String(e.code) : undefined;
  return { type, message: message ?? (typeof e?.message === 'string' ? e.message : String(error)), ...(code ? { code } : {}) };
}
