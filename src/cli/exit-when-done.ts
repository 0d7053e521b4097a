// A finished command's process ends even when a client library leaves a handle open.

/** How long a finished command may take to end by itself. */
const LINGER_MS = 2000;

/**
 * Called once a command has finished (a service stopped cleanly, its clients disconnected): if the process has not
 * ended by itself LINGER_MS later, it says how many handles held it and exits with its exit code. kafkajs leaves
 * connections open after a broker restart even once every client is disconnected; `driftline run` would otherwise
 * linger after "driftline stopped", which a supervisor waiting for the exit takes for a hung stop.
 */
export function exitWhenDone(): void {
  setTimeout(() => {
    const held = process.getActiveResourcesInfo().filter((kind) => kind !== 'Timeout');
    process.stderr.write(`driftline: finished, but ${held.length} open handle(s) (${[...new Set(held)].join(', ')}) kept the process alive for ${LINGER_MS} ms; exiting\n`);
    process.exit();
  }, LINGER_MS).unref();
}
