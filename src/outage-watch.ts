import type { Logger } from 'pino';
import { errorFields } from './log-error';

/**
 * Logs a dependency's outage once when it starts (with its real cause: refused, reset, timed
 * out) and once when it ends, never per request. Fed by every call's outcome, so a dependency
 * that is connected but silent is noticed too, and recovery is noticed without a restart.
 */
export class OutageWatch {
  private isDown = false;
  private lastFailureAt = 0;
  private recheck?: NodeJS.Timeout;
  constructor(
    private readonly what: string,
    private readonly logger?: Logger,
    /**
     * An outage ends at the first success this long after the last failure. A partial outage
     * (a Redis Cluster master failing over: other slots answer, its slots fail) alternates
     * successes and failures; it is one outage, logged once, not a flapping pair per request.
     */
    private readonly quietMs = 1000,
  ) {}

  get down(): boolean {
    return this.isDown;
  }

  failed(error: unknown) {
    this.lastFailureAt = Date.now();
    if (this.isDown) return;
    this.isDown = true;
    this.logger?.error({ err: errorFields(error, describeFailure(error)) }, `${this.what} unreachable`);
  }

  succeeded() {
    if (!this.isDown) return;
    const quietFor = Date.now() - this.lastFailureAt;
    if (quietFor < this.quietMs) {
      // Answering again, but a failure was just seen: it is over if nothing fails until the quiet
      // period ends (checked then, even if no further call comes).
      const failureSeen = this.lastFailureAt;
      this.recheck ??= setTimeout(() => {
        this.recheck = undefined;
        if (this.lastFailureAt === failureSeen) this.succeeded();
      }, this.quietMs - quietFor).unref();
      return;
    }
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
