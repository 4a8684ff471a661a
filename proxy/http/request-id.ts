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
/**
 * The last three digits come from a table and the rest is formatted once per 4,096 ids:
 * Number.prototype.toString(16) per request was ~1 % of a worker in profiles.
 */
const LOW_IDS = 4_096;
const LOW_DIGITS = Array.from({ length: LOW_IDS }, (_, i) => i.toString(16).padStart(3, '0'));

let prefix = randomBytes(10).toString('hex');
let counter = COUNTER_START;
let block = '';

export function newRequestId(): string {
  if (counter === COUNTER_LIMIT) {
    prefix = randomBytes(10).toString('hex');
    counter = COUNTER_START;
  }
  const low = counter % LOW_IDS;
  // COUNTER_START is a multiple of LOW_IDS: the first id formats the first block.
  if (low === 0) block = prefix + Math.floor(counter / LOW_IDS).toString(16);
  counter++;
  return block + LOW_DIGITS[low]!;
}
