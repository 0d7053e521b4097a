import { query, type VectorSample } from '../../src/metrics/prometheus-query.js';

/** Polls `promql` until `accept` holds for its result or the deadline passes; returns the last result. */
export async function poll(
  baseUrl: string,
  promql: string,
  accept: (r: VectorSample[]) => boolean,
  deadline: number,
): Promise<VectorSample[]> {
  let last: VectorSample[] = [];
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      last = await query(baseUrl, promql);
      if (accept(last)) return last;
    } catch (err) {
      lastError = err;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(
    `timed out waiting for ${promql}: last result ${JSON.stringify(last)}` +
      (lastError ? `, last error ${String(lastError)}` : ''),
  );
}
