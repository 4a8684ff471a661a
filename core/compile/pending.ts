/**
 * Pending: the work the next build() must do, as named sets of keys. It is how the stages
 * talk: set()/delete() fill the input sets, the processors drain those and fill the output
 * sets, assembly drains those and fills the status sets, and the status stage drains the
 * status sets.
 *
 * Invariants:
 * - A key is in a set when what it names may be out of date; a stage may add more than
 *   needed (rebuilding an unchanged resource produces the same hash and no delta), never
 *   less.
 * - Every set is empty when build() returns; each stage clears the sets it drains, and no
 *   stage adds to a set a stage before it drains.
 */
export class Pending {
  // Inputs, by kind: what set()/delete() changed. Drained by the processors.
  /** An IngressClass changed: which Ingresses are Vane's may have changed for all of them. */
  classes = true;
  readonly ingresses = new Set<string>();
  readonly canaries = new Set<string>();
  readonly services = new Set<string>();
  readonly slices = new Set<string>();
  readonly secrets = new Set<string>();

  // Resources, by name or key: what a changed fragment or reference reaches. Drained by assembly.
  /** Hosts whose `vhost/…` resource must be rebuilt. */
  readonly hosts = new Set<string>();
  listener = true;
  /** Secret keys (`namespace/name`) whose `secret/…` resource must be rebuilt. */
  readonly secretResources = new Set<string>();
  /** Backend resource names whose `backend/…` resource must be rebuilt. */
  readonly backends = new Set<string>();
  /** Backend resource names whose `endpoints/…` resource must be rebuilt. */
  readonly endpoints = new Set<string>();

  // Statuses, by object key. Drained by the status stage.
  readonly ingressStatuses = new Set<string>();
  readonly canaryStatuses = new Set<string>();
}
