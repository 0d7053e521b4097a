// The live dashboard of `driftline run`, whatever its source: a feed of the first streams seen and its routes.
import { createDashboardRoutes } from '../dashboard/dashboard-routes.js';
import { DashboardFeed } from '../dashboard/dashboard-feed.js';
import { describeLearner, type DriftlineConfig } from './config.js';

/** Streams the dashboard of `driftline run` shows (the first ones seen). */
export const DASHBOARD_STREAMS = 64;

export interface ServiceDashboard {
  /** Observes every pipeline output; keeps the shown streams'. */
  readonly feed: DashboardFeed;
  readonly routes: ReturnType<typeof createDashboardRoutes>;
}

/**
 * The first DASHBOARD_STREAMS streams are shown: each keeps some hundreds of KB of rings, which a service of
 * thousands of streams should not pay for streams nobody looks at. `stateBytesOf` is the learner's state bytes of
 * a live stream (undefined for one not live here); `token` guards the pages when set.
 */
export function createServiceDashboard(
  config: DriftlineConfig,
  options: { readonly token: string | undefined; readonly stateBytesOf: (stream: string) => number | undefined; readonly onUnauthorized: () => void },
): ServiceDashboard {
  const feed = new DashboardFeed({ maxStreams: Math.min(config.streams.maxStreams, DASHBOARD_STREAMS) });
  const describe = (stream: string) => {
    const stateBytes = options.stateBytesOf(stream);
    return stateBytes === undefined ? undefined : { learner: describeLearner(config), stateBytes };
  };
  const routes = createDashboardRoutes({ feed, describe, ...(options.token !== undefined ? { token: options.token } : {}), onUnauthorized: options.onUnauthorized });
  return { feed, routes };
}
