/**
 * Events (core/v1), as every Vane writer records them: one object per occurrence, named after
 * the object it is about, with the writing component as source and reporting controller.
 */
import type { Fence, Kube } from './client.ts';
import { RESOURCES } from './resources.ts';

export interface InvolvedObject {
  apiVersion?: string;
  kind?: string;
  name?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
}

export type EventType = 'Normal' | 'Warning';

export interface EventObject {
  apiVersion: 'v1';
  kind: 'Event';
  metadata: { generateName: string; namespace?: string };
  involvedObject: InvolvedObject;
  reason: string;
  message: string;
  type: EventType;
  source: { component: string };
  firstTimestamp: string;
  lastTimestamp: string;
  count: number;
  reportingComponent: string;
  reportingInstance: string;
}

/** MAX_EVENT_MESSAGE: the API server refuses Event messages past 1 KiB. */
export const MAX_EVENT_MESSAGE = 1024;

/** eventBody is a core/v1 Event about `involved`; now is when it happened (defaults to the clock). */
export function eventBody(involved: InvolvedObject, type: EventType, reason: string, message: string, component: string, now = new Date()): EventObject {
  const at = now.toISOString();
  return {
    apiVersion: 'v1', kind: 'Event',
    metadata: { generateName: `${involved.name}.`, ...(involved.namespace ? { namespace: involved.namespace } : {}) },
    involvedObject: involved,
    reason, message: message.slice(0, MAX_EVENT_MESSAGE), type,
    source: { component },
    firstTimestamp: at, lastTimestamp: at, count: 1,
    reportingComponent: component, reportingInstance: component,
  };
}

/** recordEvent creates an Event in the involved object's namespace (default for cluster-scoped objects). */
export async function recordEvent(kube: Kube, involved: InvolvedObject, type: EventType, reason: string, message: string, component: string, options: { fence?: Fence } = {}): Promise<void> {
  const body = eventBody({ ...involved, namespace: involved.namespace || 'default' }, type, reason, message, component);
  await kube.create(RESOURCES.Event, body, options);
}
