import { parentPort, workerData } from 'node:worker_threads';
import { runFppJob, type FppJob } from '../reproduce/fpp.js';

// One FPP-reproduction run in a worker thread (driftline reproduce fpp --jobs N): progress, then the result.
const job = workerData as FppJob;
const result = runFppJob(job, (done) => parentPort!.postMessage({ type: 'progress', done }));
parentPort!.postMessage({ type: 'result', result });
