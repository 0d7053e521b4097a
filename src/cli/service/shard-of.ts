/**
 * The shard of a stream key: FNV-1a (32-bit) over its UTF-16 code units, modulo the shard count. Fixed for the life
 * of a process; a restart with another count moves keys between shards, which is harmless since a stream's state
 * lives in its own checkpoint file.
 */
export function shardOf(stream: string, shards: number): number {
  if (shards === 1) return 0;
  let h = 0x811c9dc5;
  for (let i = 0; i < stream.length; i++) {
    h ^= stream.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % shards;
}
