/** The operator's Prometheus metrics (prom-client), one registry per operator instance. */
import { Registry, Gauge, Counter, Histogram, collectDefaultMetrics } from 'prom-client';

export interface OperatorMetrics {
  registry: Registry;
  connectedProxies: Gauge;
  expectedProxies: Gauge;
  proxiesAtVersion: Gauge<'state'>;
  propagationSeconds: Histogram;
  nacks: Counter;
  compileSeconds: Histogram;
  sends: Counter<'kind'>;
  sendBytes: Counter<'kind'>;
  generation: Gauge;
  leader: Gauge;
  streamRejections: Counter<'reason'>;
  streamReplaced: Counter;
  streamRefusalDisconnects: Counter;
}

export function createOperatorMetrics(): OperatorMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'vane_operator_process_' });
  return {
    registry,
    connectedProxies: new Gauge({ name: 'vane_operator_connected_proxies', help: 'Proxies connected to the stream', registers: [registry] }),
    expectedProxies: new Gauge({ name: 'vane_operator_expected_proxies', help: 'Proxies expected to serve (ready proxy pods, or configured proxies in file mode)', registers: [registry] }),
    proxiesAtVersion: new Gauge({ name: 'vane_operator_proxies_at_version', help: 'Expected proxies by whether they ACKed the current version', labelNames: ['state'], registers: [registry] }),
    propagationSeconds: new Histogram({
      name: 'vane_operator_propagation_seconds', help: 'Object change to the last expected proxy ACK',
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30], registers: [registry],
    }),
    nacks: new Counter({ name: 'vane_operator_nacks_total', help: 'Versions refused by proxies', registers: [registry] }),
    compileSeconds: new Histogram({ name: 'vane_operator_compile_seconds', help: 'Time to build a version', buckets: [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5], registers: [registry] }),
    sends: new Counter({ name: 'vane_operator_sends_total', help: 'Versions sent to proxies', labelNames: ['kind'], registers: [registry] }),
    sendBytes: new Counter({ name: 'vane_operator_send_bytes_total', help: 'Bytes of versions sent to proxies', labelNames: ['kind'], registers: [registry] }),
    generation: new Gauge({ name: 'vane_operator_generation', help: 'Generation of the current version', registers: [registry] }),
    leader: new Gauge({ name: 'vane_operator_leader', help: '1 while this replica leads and serves the stream', registers: [registry] }),
    streamRejections: new Counter({
      name: 'vane_operator_stream_rejections_total', help: 'Stream clients turned away, by reason (unauthenticated, forbidden, not_leader, protocol, rate_limited, busy)',
      labelNames: ['reason'], registers: [registry],
    }),
    streamReplaced: new Counter({ name: 'vane_operator_stream_replaced_connections_total', help: 'Connections closed because the same proxy connected again', registers: [registry] }),
    streamRefusalDisconnects: new Counter({
      name: 'vane_operator_stream_refusal_disconnects_total', help: 'Connections closed (4009) because the proxy refused versions (NACK or resync) too often in a row',
      registers: [registry],
    }),
  };
}
