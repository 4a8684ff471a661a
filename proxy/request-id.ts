/**
 * Request ids: 32 lower-case hex digits, the shape of ingress-nginx's $request_id. A random
 * 80-bit prefix per process and a 48-bit counter make them unique across workers and pods
 * without a random draw per request (crypto.randomUUID's was visible in profiles, and its
 * strings were a tenth of a request's allocations).
 */
import { randomBytes } from 'node:crypto';

// The counter runs from 2^44 to 2^48, so its hex is always 12 digits and no id needs padding.
const COUNTER_START = 2 ** 44;
const COUNTER_LIMIT = 2 ** 48;
let prefix = randomBytes(10).toString('hex');
let counter = COUNTER_START;

export function newRequestId(): string {
  if (counter === COUNTER_LIMIT) {
    prefix = randomBytes(10).toString('hex');
    counter = COUNTER_START;
  }
  return prefix + (counter++).toString(16);
}
