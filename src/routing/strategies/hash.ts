/**
 * Fast, stable, non-cryptographic string hashing for sticky routing. It must give the
 * same answer in every replica and after every restart (no per-process seed), so the
 * same user lands on the same deployment wherever the request arrives. Nobody gains by
 * choosing colliding keys (the worst case is sharing a deployment), so no crypto needed.
 */

/** FNV-1a 32-bit offset basis: the starting state for {@link fnv1a}. */
export const fnvOffsetBasis = 0x811c9dc5;

/**
 * FNV-1a over UTF-16 code units, continuing from `state` — so hash(a + b) can be
 * computed as fnv1a(b, fnv1a(a)) without building the concatenated string.
 */
export function fnv1a(text: string, state: number = fnvOffsetBasis): number {
  let h = state;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/**
 * MurmurHash3's 32-bit finaliser. FNV-1a's high bits avalanche poorly for keys that
 * differ only at the end ("user-1", "user-2"); this mix makes every input bit affect
 * every output bit, which rendezvous hashing needs to spread keys evenly.
 */
export function fmix32(value: number): number {
  let h = value;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
