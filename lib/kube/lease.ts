/**
 * The coordination.k8s.io/v1 Lease: read (null when missing), create, and update as a
 * compare-and-swap on its resourceVersion (KubeError EHTTP 409 when someone wrote it since it
 * was read). Leader election itself is the caller's policy (operator/leader.ts).
 */
import type { Kube } from './client.ts';
import { RESOURCES } from './resources.ts';

export interface LeaseSpec {
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  /** RFC 3339 with microseconds (MicroTime); see microTime. */
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions?: number;
}

export interface Lease {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; namespace?: string; resourceVersion?: string; [k: string]: unknown };
  spec?: LeaseSpec;
}

/** microTime formats ms since the epoch as a MicroTime: the API server wants six fractional digits. */
export function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

export interface LeaseCallOptions { timeoutMs?: number }

export function readLease(kube: Kube, namespace: string, name: string, options: LeaseCallOptions = {}): Promise<Lease | null> {
  return kube.getOrNull<Lease>(RESOURCES.Lease, { namespace, name }, options);
}

export function createLease(kube: Kube, namespace: string, name: string, spec: LeaseSpec, options: LeaseCallOptions = {}): Promise<Lease> {
  return kube.create<Lease>(RESOURCES.Lease, { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name, namespace }, spec }, options);
}

/** updateLease writes lease back; its metadata.resourceVersion makes the write fail (409) if the Lease changed since. */
export function updateLease(kube: Kube, lease: Lease, options: LeaseCallOptions = {}): Promise<Lease> {
  return kube.replace<Lease>(RESOURCES.Lease, { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', ...lease }, options);
}
