/**
 * A tiny client for Prometheus' HTTP API (GET /api/v1/query), enough for tests and smoke checks.
 */

/** One sample of an instant vector: its labels (with __name__) and its value as a number. */
export interface VectorSample {
  readonly metric: Readonly<Record<string, string>>;
  readonly timestamp: number;
  readonly value: number;
}

export class PrometheusQueryError extends Error {
  constructor(message: string, readonly status?: number) {
    super(message);
    this.name = 'PrometheusQueryError';
  }
}

interface QueryResponse {
  status: 'success' | 'error';
  errorType?: string;
  error?: string;
  data?: { resultType: string; result: unknown };
}

/**
 * Evaluates `promql` at the current time on the Prometheus at `baseUrl` (e.g. http://127.0.0.1:9090) and
 * returns the instant vector. A scalar result comes back as one sample with no labels. Values such as 'NaN'
 * and '+Inf' parse to the corresponding numbers.
 */
export async function query(baseUrl: string, promql: string, options: { timeoutMs?: number } = {}): Promise<VectorSample[]> {
  const url = new URL('/api/v1/query', baseUrl);
  url.searchParams.set('query', promql);
  const res = await fetch(url, { signal: AbortSignal.timeout(options.timeoutMs ?? 5000) });
  const text = await res.text();
  let body: QueryResponse;
  try {
    body = JSON.parse(text) as QueryResponse;
  } catch {
    throw new PrometheusQueryError(`Prometheus answered ${res.status} with a non-JSON body: ${text.slice(0, 200)}`, res.status);
  }
  if (body.status !== 'success' || body.data === undefined) {
    throw new PrometheusQueryError(`query ${JSON.stringify(promql)} failed: ${body.errorType ?? res.status}: ${body.error ?? text.slice(0, 200)}`, res.status);
  }
  const { resultType, result } = body.data;
  if (resultType === 'vector') {
    return (result as Array<{ metric: Record<string, string>; value: [number, string] }>).map((s) => ({
      metric: s.metric,
      timestamp: s.value[0],
      value: parseSampleValue(s.value[1]),
    }));
  }
  if (resultType === 'scalar') {
    const [timestamp, value] = result as [number, string];
    return [{ metric: {}, timestamp, value: parseSampleValue(value) }];
  }
  throw new PrometheusQueryError(`query ${JSON.stringify(promql)} returned a ${resultType}, not an instant vector`);
}

/** Prometheus renders sample values as Go floats: '1.5', '1e-05', 'NaN', '+Inf', '-Inf'. */
function parseSampleValue(text: string): number {
  if (text === '+Inf' || text === 'Inf') return Infinity;
  if (text === '-Inf') return -Infinity;
  return Number(text);
}
