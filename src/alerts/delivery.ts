import type { Logger } from 'pino';
import { Webhook } from 'standardwebhooks';
import type { Outbox, WebhookDeliveryRow } from './outbox';
import { errorFields } from '../log-error';

export type DeliveryOptions = {
  outbox: Outbox;
  url: string;
  /** `whsec_…`: the receiver verifies each signature with it. */
  secret: string;
  logger: Logger;
  now?: () => number;
  onResult?: (result: 'delivered' | 'retry' | 'failed') => void;
  /** How often the outbox is polled for due events. */
  pollMs?: number;
};

/** Deliveries in flight at once, at most. */
const MAX_IN_FLIGHT = 4;
/** One attempt's limit: a receiver that does not answer in time is retried like a 5xx. */
const ATTEMPT_TIMEOUT_MS = 5_000;
/** How long a claimed event is this instance's before another may try it (longer than an attempt). */
const LEASE_MS = 30_000;
/** Wait before attempt n+1 (after n failures): first retry within 5 s, then growing to an hour. */
const BACKOFF_MS = [5_000, 30_000, 120_000, 600_000, 1_800_000, 3_600_000];
/** After this long since an event was recorded, it is given up (status failed). */
export const GIVE_UP_AFTER_MS = 24 * 3_600_000;

/** Settled events are kept this long for `webhookDeliveries`, then pruned. */
export const KEEP_SETTLED_MS = 30 * 86_400_000;
const PRUNE_EVERY_MS = 10 * 60_000;

export const retryDelay = (failures: number) => BACKOFF_MS[Math.min(failures, BACKOFF_MS.length) - 1];

/**
 * Delivers the outbox as Standard Webhooks (webhook-id, webhook-timestamp, webhook-signature:
 * HMAC-SHA256 over `id.timestamp.body`), in the background — never on a request's path — at most
 * four at a time, retrying a non-2xx or a timeout with backoff until it is a day old.
 */
export class WebhookDelivery {
  private readonly signer: Webhook;
  private timer?: NodeJS.Timeout;
  private running: Promise<void> | null = null;
  private closed = false;
  private lastPrune = 0;

  constructor(private readonly options: DeliveryOptions) {
    this.signer = new Webhook(options.secret);
  }

  start(): void {
    this.timer = setInterval(() => void this.poll(), this.options.pollMs ?? 1_000);
    this.timer.unref();
    void this.poll();
  }

  /** One pass over due events (tests call it to skip the wait). Never throws. */
  poll(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.running ??= this.deliverDue()
      .catch((error: Error) => this.options.logger.warn({ err: errorFields(error) }, 'webhook outbox unavailable; retrying'))
      .finally(() => (this.running = null));
    return this.running;
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    await this.running;
  }

  private async deliverDue(): Promise<void> {
    const now = (this.options.now ?? Date.now)();
    if (now - this.lastPrune >= PRUNE_EVERY_MS) {
      this.lastPrune = now;
      await this.options.outbox.prune(new Date(now - KEEP_SETTLED_MS));
    }
    for (;;) {
      const events = await this.options.outbox.claim(MAX_IN_FLIGHT, LEASE_MS);
      await Promise.all(events.map((event) => this.attempt(event)));
      if (events.length < MAX_IN_FLIGHT || this.closed) return;
    }
  }

  private async attempt(event: WebhookDeliveryRow): Promise<void> {
    const { outbox, logger } = this.options;
    const now = (this.options.now ?? Date.now)();
    const body = JSON.stringify(event.payload);
    // The receiver checks the timestamp against its own clock (5 minutes either way): always the wall clock.
    const sentAt = new Date();
    let result: string;
    let delivered = false;
    try {
      const response = await fetch(this.options.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'webhook-id': event.id,
          'webhook-timestamp': String(Math.floor(sentAt.getTime() / 1000)),
          'webhook-signature': this.signer.sign(event.id, sentAt, body),
        },
        body,
        signal: AbortSignal.timeout(ATTEMPT_TIMEOUT_MS),
        redirect: 'manual',
      });
      await response.body?.cancel().catch(() => undefined);
      delivered = response.status >= 200 && response.status < 300;
      result = `HTTP ${response.status}`;
    } catch (error) {
      const e = error as Error;
      result = e.name === 'TimeoutError' ? `timed out after ${ATTEMPT_TIMEOUT_MS} ms` : `failed: ${(e.cause as Error | undefined)?.message ?? e.message}`;
    }
    if (delivered) {
      await outbox.settle(event.id, result, { delivered: true });
      this.options.onResult?.('delivered');
      return;
    }
    const retryAt = now + retryDelay(event.attempts);
    const givingUp = retryAt - event.createdAt.getTime() > GIVE_UP_AFTER_MS;
    await outbox.settle(event.id, result, { delivered: false, retryAt: givingUp ? null : new Date(retryAt) });
    this.options.onResult?.(givingUp ? 'failed' : 'retry');
    logger.warn({ webhookId: event.id, type: event.type, attempt: event.attempts, result, retryAt: givingUp ? null : new Date(retryAt).toISOString() }, givingUp ? 'webhook delivery failed; giving up' : 'webhook delivery failed; will retry');
  }
}
