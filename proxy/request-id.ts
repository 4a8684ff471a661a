/**
 * Request ids: 32 lower-case hex digits, the shape of ingress-nginx's $request_id. A random
 * 80-bit prefix per process and a 48-bit counter make them unique across workers and pods
 * without a random draw per request (crypto.randomUUID's was visible in profiles, and its
 * strings were a tenth of a request's allocations).
 */
import { randomBytes } from 'node:crypto';

const COUNTER_LIMIT = 2 ** 48;
let prefix = randomBytes(10).toString('hex');
let counter = 0;

export function newRequestId(): string {
  if (counter === COUNTER_LIMIT) {
    prefix = randomBytes(10).toString('hex');
    counter = 0;
  }
  return prefix + (counter++).toString(16).padStart(12, '0');
}
