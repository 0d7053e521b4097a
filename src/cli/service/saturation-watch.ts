// One thread serves every stream unless `streams.shards` says otherwise, and it falls behind long before the machine
// is busy: on this project's 2-core machine one shard topped out at 13,000-17,000 events/s with the other core
// half idle, while 2 shards served 300 streams at 50 Hz within a 20 ms p99 (docs/performance.md, "What limits
// 1,000 streams"). An operator on the default should hear that from the service, not from a latency graph.

/** Event-loop utilization (0..1) at or above which a sample counts as saturated. */
export const SATURATED_UTILIZATION = 0.95;
/** Consecutive saturated samples before the service says so. */
export const SATURATED_SAMPLES = 3;
/** How often the main thread's utilization is sampled. */
export const SATURATION_SAMPLE_MS = 10_000;

export interface SaturationWatchOptions {
  readonly shards: number;
  /** Cores this process may use (os.availableParallelism()). */
  readonly cores: number;
  readonly warn: (fields: object, message: string) => void;
}

/**
 * Fed the main thread's event-loop utilization every SATURATION_SAMPLE_MS; warns once, after SATURATED_SAMPLES
 * saturated samples in a row, that shards would use the idle cores. Silent with shards already on (the main
 * thread then only handles sockets; more shards would not relieve it) and on a single core.
 */
export class SaturationWatch {
  private saturatedInARow = 0;
  private warned = false;

  constructor(private readonly options: SaturationWatchOptions) {}

  /** Takes one sample; true when this sample made it warn. */
  sample(utilization: number): boolean {
    if (this.warned || this.options.shards > 1 || this.options.cores < 2) return false;
    this.saturatedInARow = utilization >= SATURATED_UTILIZATION ? this.saturatedInARow + 1 : 0;
    if (this.saturatedInARow < SATURATED_SAMPLES) return false;
    this.warned = true;
    const seconds = (SATURATED_SAMPLES * SATURATION_SAMPLE_MS) / 1000;
    this.options.warn(
      { eventLoopUtilization: utilization, shards: this.options.shards, cores: this.options.cores },
      `driftline: the thread serving every stream has been busy ${Math.round(100 * SATURATED_UTILIZATION)} % or more for ${seconds} s, so events queue and producers are slowed; ` +
        `${this.options.cores} cores are available: set streams.shards: auto to learn on all of them (docs/streams.md, "Shards")`,
    );
    return true;
  }
}
