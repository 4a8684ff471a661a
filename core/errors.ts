/**
 * VaneError is the root of every error Vane raises on purpose. Callers branch on `code`, a
 * stable machine-readable string, never on the message, which is for people (undici's
 * errors.js is the model). Each part narrows `code` to its own union (CertError's
 * 'EEXIST' | 'ECONFLICT' | …); an error from a dependency stays what it is, passed as `cause`.
 */
export class VaneError<Code extends string = string> extends Error {
  override name = 'VaneError';
  readonly code: Code;

  constructor(code: Code, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/** isVaneError says whether err is a VaneError, with one of codes when any are given. */
export function isVaneError<Code extends string = string>(err: unknown, ...codes: Code[]): err is VaneError<Code> {
  return err instanceof VaneError && (codes.length === 0 || codes.includes(err.code as Code));
}
