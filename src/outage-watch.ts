import type { Logger } from 'pino';

/**
 * Logs a dependency's outage once when it starts (with its real cause: refused, reset, timed
 * out) and once when it ends, never per request. Fed by every call's outcome, so a dependency
 * that is connected but silent is noticed too, and recovery is noticed without a restart.
 */
export class OutageWatch {
  private isDown = false;
  constructor(
    private readonly what: string,
    private readonly logger?: Logger,
  ) {}

  get down(): boolean {
    return this.isDown;
  }

  failed(error: unknown) {
    if (this.isDown) return;
    this.isDown = true;
    this.logger?.error({ err: { message: describeFailure(error) } }, `${this.what} unreachable`);
  }

  succeeded() {
    if (!this.isDown) return;
    this.isDown = false;
    this.logger?.warn(`${this.what} reachable again`);
  }
}

/** The real cause of a driver error, through wrappers (Drizzle wraps postgres.js errors in `cause`). */
export function describeFailure(error: unknown): string {
  const messages: string[] = [];
  let current = error as { message?: unknown; code?: unknown; cause?: unknown } | null | undefined;
  for (let depth = 0; current && typeof current === 'object' && depth < 4; depth++, current = current.cause as typeof current) {
    const message = String(current.message ?? '');
    const code = current.code;
    if (!/^Failed query/.test(message)) messages.push(typeof code === 'string' && !message.includes(code) ? `${message} (${code})` : message);
  }
  return messages.join(': ') || String(error);
}
