import { randomBytes } from 'node:crypto';

// Unique across instances by a random prefix per process, and per request by a counter: a UUID
// per request allocated more than the whole key gate (measured on the library bench).
const prefix = randomBytes(6).toString('base64url');
let sequence = 0;

/** A new request id (`x-request-id`, the access log, internal errors). */
export function newRequestId(): string {
  sequence = (sequence + 1) % Number.MAX_SAFE_INTEGER;
  return `${prefix}-${sequence.toString(36)}`;
}
