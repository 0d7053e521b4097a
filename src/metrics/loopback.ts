/**
 * Whether a listen host stays on this machine. Shared by every listener that may run without a token (the
 * WebSocket edge, the metrics endpoint): off loopback a token guards every endpoint (DESIGN section 7).
 */
const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost', '::ffff:127.0.0.1']);

export function isLoopbackHost(host: string): boolean {
  return LOOPBACK.has(host) || /^127\.\d+\.\d+\.\d+$/.test(host);
}
