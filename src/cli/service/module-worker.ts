import { Worker } from 'node:worker_threads';

/**
 * A worker thread running the ES module at `url` with `workerData`. From source (a `.ts` URL, run under tsx) the
 * worker registers tsx itself before importing it: Node 20 does not pass `--import` hooks on to workers.
 */
export function startModuleWorker(url: URL, workerData: unknown): Worker {
  if (!url.pathname.endsWith('.ts')) return new Worker(url, { workerData });
  const tsxApi = import.meta.resolve('tsx/esm/api');
  return new Worker(`import(${JSON.stringify(tsxApi)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(url.href)}); });`, { eval: true, workerData });
}
