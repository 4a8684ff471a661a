/**
 * foreignError is an error as a dependency throws it: a plain Error with fields of its own
 * (client-node's Watch sets statusCode on one, Node's system errors a string code). Vane's
 * own errors are VaneError subclasses, which is what the lint rule against
 * Object.assign(new Error(…), …) holds product code to; a stand-in for someone else's
 * error is the one place the pattern is right.
 */
export function foreignError(message: string, fields: Record<string, unknown>): Error {
  // eslint-disable-next-line no-restricted-syntax -- the shape of another library's error, not one of ours
  return Object.assign(new Error(message), fields);
}
