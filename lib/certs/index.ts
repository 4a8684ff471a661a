/**
 * lib/certs: Vane's own CA and serving certificates — generated, stored (Secret, directory or
 * memory), rotated before expiry, and published as a caBundle. Used by the admission webhook
 * and, with a different store and no webhook target, by the operator's stream TLS.
 * The Kubernetes adapters are behind their own door, lib/certs/kube.ts.
 */
export { CertError, isCertError, type CertErrorCode } from './errors.ts';
export {
  createCertificate, generateKeyPair, privateKeyPem, splitPemCertificates, subjectDer, keyIdentifier, ipBytes,
  type CertificateRequest, type ExtKeyUsage, type Issuer, type KeyPair,
} from './x509.ts';
export {
  planRotation, policyOf, inspect, DEFAULT_DURATIONS, BACKDATE_MS,
  type CertBundle, type CertPolicy, type RotationInput, type RotationPlan,
} from './rotation.ts';
export { MemoryCertStore, DirCertStore, BUNDLE_KEYS, bundleFromTexts, type CertStore, type StoredBundle } from './stores.ts';
export { CertManager, type CaBundleTarget, type CertManagerOptions, type ReconcileResult, type ServingCertificate } from './manager.ts';
export { loadKeyPair, watchKeyPair, type KeyPairPem } from './files.ts';
