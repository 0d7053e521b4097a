import { parentPort, workerData } from 'node:worker_threads';
import { runCopyJob, type CopyJob } from '../reproduce/copy-task.js';

// One copy-task run in a worker thread (driftline reproduce copy-task --jobs N): progress, then the result.
const job = workerData as CopyJob;
const result = runCopyJob(job, (done) => parentPort!.postMessage({ type: 'progress', done }));
parentPort!.postMessage({ type: 'result', result });
