/** CertError: the one error class of lib/certs, with a stable `code` callers branch on. */
import { VaneError } from '../../core/index.ts';

export type CertErrorCode =
  /** create lost to another writer: re-read and adopt what it wrote. */
  | 'EEXIST'
  /** replace or patch lost a compare-and-swap race: re-read and plan again. */
  | 'ECONFLICT'
  /** the object to keep in sync does not exist (yet). */
  | 'ENOTFOUND'
  /** options or stored material that cannot work. */
  | 'EINVALID'
  /** the API server or filesystem refused or failed. */
  | 'EAPI';

export class CertError extends VaneError<CertErrorCode> {
  override name = 'CertError';
}

export function isCertError(err: unknown, ...codes: CertErrorCode[]): err is CertError {
  return err instanceof CertError && (codes.length === 0 || codes.includes(err.code));
}
