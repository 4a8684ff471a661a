/** Compile options, and the resolved form every stage reads (defaults filled in once). */
import { INGRESS_CONTROLLER } from '../objects.ts';
import type { ClassSelection } from '../selectors.ts';

export interface CompileOptions {
  /** Name of Vane's IngressClass; Ingresses naming it are Vane's even before the IngressClass exists. */
  ingressClass?: string;
  /** spec.controller value that marks an IngressClass as Vane's. */
  controller?: string;
  /** `namespace/name` of a TLS Secret that overrides every other default certificate. */
  defaultCertificate?: string;
  /** Merge runs of `/` in request paths before matching (default true). */
  mergeSlashes?: boolean;
  /**
   * The Secrets given are metadata only (the admission webhook's cache never holds keys): a TLS
   * Secret counts as usable when it exists with type kubernetes.io/tls; its certificate and key
   * are not checked and no secret resources are produced. For verdicts, never for serving.
   */
  secretsMetadataOnly?: boolean;
}

export interface ResolvedOptions extends ClassSelection {
  defaultCertificate: string | null;
  mergeSlashes: boolean;
  secretsMetadataOnly: boolean;
}

export function resolveOptions(options: CompileOptions): ResolvedOptions {
  return {
    ingressClass: options.ingressClass ?? 'vane',
    controller: options.controller ?? INGRESS_CONTROLLER,
    defaultCertificate: options.defaultCertificate ?? null,
    mergeSlashes: options.mergeSlashes ?? true,
    secretsMetadataOnly: options.secretsMetadataOnly ?? false,
  };
}
