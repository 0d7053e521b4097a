/**
 * The registry factory. driftline never registers on prom-client's global registry: every process part that
 * exports metrics gets a Registry from here and passes it in (DESIGN section 5, "the registry is injected").
 */
import { Registry, collectDefaultMetrics } from 'prom-client';

export interface MetricsRegistryOptions {
  /** Collect Node's default process metrics (CPU, memory, event-loop lag, GC) into the registry. Default true. */
  readonly defaultMetrics?: boolean;
  /** Name prefix for the default metrics only (e.g. 'driftline_'); driftline's own metrics are named in full. */
  readonly prefix?: string;
}

/** A fresh prom-client Registry (never the global one), with Node's default metrics unless turned off. */
export function createMetricsRegistry(options: MetricsRegistryOptions = {}): Registry {
  const register = new Registry();
  if (options.defaultMetrics ?? true) {
    collectDefaultMetrics(options.prefix === undefined ? { register } : { register, prefix: options.prefix });
  }
  return register;
}
