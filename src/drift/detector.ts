import { Adwin, type AdwinOptions } from './adwin.js';
import { CalibratedDetector, type CalibratedDetectorOptions } from './calibrated-detector.js';
import { Ddm, type DdmOptions } from './ddm.js';
import { Eddm, type EddmOptions } from './eddm.js';
import { HddmA, type HddmAOptions } from './hddm-a.js';
import { HddmW, type HddmWOptions } from './hddm-w.js';
import { Kswin, type KswinOptions } from './kswin.js';
import { PageHinkley, type PageHinkleyOptions } from './page-hinkley.js';

/**
 * What every drift detector offers, River-style: feed one value at a time with `update`, read `driftDetected`
 * right after. A detector resets itself on the update after a detection. State is bounded.
 */
export interface DriftDetector {
  update(x: number): this;
  readonly driftDetected: boolean;
  reset(): void;
}

/** A detector as configuration names it (the `drift.detectors` entries of the run config). */
export type DetectorSpec =
  | ({ readonly kind: 'page-hinkley' } & Readonly<PageHinkleyOptions>)
  | ({ readonly kind: 'adwin' } & Readonly<AdwinOptions>)
  | ({ readonly kind: 'ddm' } & Readonly<DdmOptions>)
  | ({ readonly kind: 'eddm' } & Readonly<EddmOptions>)
  | ({ readonly kind: 'hddm-a' } & Readonly<HddmAOptions>)
  | ({ readonly kind: 'hddm-w' } & Readonly<HddmWOptions>)
  | ({ readonly kind: 'kswin' } & Readonly<KswinOptions>)
  | ({ readonly kind: 'calibrated' } & CalibratedDetectorOptions);

export type DetectorKind = DetectorSpec['kind'];

/** A new detector from its spec; the spec's `kind` is also the name drift markers carry as their source. */
export function createDetector(spec: DetectorSpec): DriftDetector {
  switch (spec?.kind) {
    case 'page-hinkley': {
      const { kind: _kind, ...options } = spec;
      return new PageHinkley(options);
    }
    case 'adwin': {
      const { kind: _kind, ...options } = spec;
      return new Adwin(options);
    }
    case 'ddm': {
      const { kind: _kind, ...options } = spec;
      return new Ddm(options);
    }
    case 'eddm': {
      const { kind: _kind, ...options } = spec;
      return new Eddm(options);
    }
    case 'hddm-a': {
      const { kind: _kind, ...options } = spec;
      return new HddmA(options);
    }
    case 'kswin': {
      const { kind: _kind, ...options } = spec;
      return new Kswin(options);
    }
    case 'hddm-w': {
      const { kind: _kind, ...options } = spec;
      return new HddmW(options);
    }
    case 'calibrated': {
      const { kind: _kind, ...options } = spec;
      return new CalibratedDetector(options);
    }
    default:
      throw new TypeError(`unknown drift detector kind '${String((spec as { kind?: unknown })?.kind)}' (expected 'page-hinkley', 'adwin', 'kswin', 'ddm', 'eddm', 'hddm-a', 'hddm-w' or 'calibrated')`);
  }
}
