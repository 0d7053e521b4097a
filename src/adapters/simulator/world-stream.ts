import type { Observable } from 'rxjs';
import { CycleWorld } from '../../simulator/cycle-world.js';
import { StochasticWorld } from '../../simulator/stochastic-world.js';
import type { StreamInput } from '../../streams/messages.js';
import { checkPacing, pacedTicks, type PacingOptions } from './paced-ticks.js';

/** CycleWorld with period p (the thesis runs 6 and 10) starting at cycle step `phase` (default 0). */
export interface CycleWorldStreamOptions extends PacingOptions {
  readonly world: 'cycle';
  readonly period: number;
  readonly phase?: number;
}

/** StochasticWorld drawn from `seed`. */
export interface StochasticWorldStreamOptions extends PacingOptions {
  readonly world: 'stochastic';
  readonly seed: number;
}

export type WorldStreamOptions = CycleWorldStreamOptions | StochasticWorldStreamOptions;

/**
 * The partially observable worlds of the Fixed Point Propagation thesis (CycleWorld, StochasticWorld) as a source
 * adapter, so a credit rule can be run through the whole spine on the thesis' own tasks: one 1-float input and one
 * 1-float target per tick, for one stream key. Pacing, delayed labels and chunking are simulatedStream's
 * (paced-ticks.ts); the worlds never drift, so no drift markers are emitted.
 *
 * The world is built once when the stream is made, so that bad world options throw here as RangeErrors rather
 * than reaching a subscriber as an error; every subscription then runs its own world from tick 0.
 */
export function worldStream(options: WorldStreamOptions): Observable<StreamInput> {
  const openWorld = worldOpener(options);
  const pacing = checkPacing(options, 'worldStream');
  return pacedTicks(pacing, () => {
    const world = openWorld();
    return { outputSize: world.outputSize, x: world.x, y: world.y, advance: () => world.next() };
  });
}

/** A factory of fresh worlds, checked by building one now. */
function worldOpener(options: WorldStreamOptions): () => CycleWorld | StochasticWorld {
  const world = (options as { world?: unknown }).world;
  let open: () => CycleWorld | StochasticWorld;
  if (world === 'cycle') {
    const { period, phase } = options as CycleWorldStreamOptions;
    // CycleWorld defaults the period; a stream names it, since 6 and 10 are different tasks.
    if (period === undefined) throw new RangeError('worldStream: period must be given for the cycle world (the thesis uses 6 and 10)');
    open = () => new CycleWorld({ period, phase });
  } else if (world === 'stochastic') {
    const { seed } = options as StochasticWorldStreamOptions;
    if (seed === undefined) throw new RangeError('worldStream: seed must be given for the stochastic world');
    open = () => new StochasticWorld({ seed });
  } else {
    throw new RangeError(`worldStream: world must be 'cycle' or 'stochastic', got ${String(world)}`);
  }
  try {
    open();
  } catch (error) {
    if (error instanceof RangeError) throw new RangeError(`worldStream: ${error.message}`);
    throw error;
  }
  return open;
}
