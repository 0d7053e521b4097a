/**
 * Remembers which refused stream keys were already reported, so each gets one Rejection. Bounded: after
 * `capacity` keys it forgets them all and starts over, so a flood of new keys cannot grow memory (a key may then
 * be reported once more).
 */
export class RefusedStreams {
  private readonly keys = new Set<string>();
  constructor(readonly capacity = 1024) {}

  /** True the first time `stream` is refused (since the memory was last emptied). */
  firstRefusal(stream: string): boolean {
    if (this.keys.has(stream)) return false;
    if (this.keys.size >= this.capacity) this.keys.clear();
    this.keys.add(stream);
    return true;
  }

  clear(): void {
    this.keys.clear();
  }
}
