/**
 * Names seen in one open object: the start and end offsets of each name as written (no
 * string made per key), until an escaped name or a big object asks for a Set of decoded names.
 */
type SeenNames = number[] | Set<string>;

const quote = 0x22;
const backslash = 0x5c;

/**
 * The first object member name that appears twice in one object of `text`, or undefined.
 * `text` must be JSON that `JSON.parse` accepted (which keeps the last of duplicate keys
 * silently). It answers what protobuf-es's `fromJsonString` duplicate check answers — a key
 * written with escapes counts as its decoded name — but skips over string contents with
 * `indexOf` instead of a loop per character, so a long prompt costs a few native scans
 * rather than a JS step per character.
 * Tests: json-duplicate-keys.test.ts (against protobuf-es on nested, escaped and array cases).
 */
export function findDuplicateKey(text: string): string | undefined {
  // One entry per open container: the names of an object, or null for an array.
  const stack: (SeenNames | null)[] = [];
  let expectKey = false;
  const length = text.length;
  let i = 0;
  while (i < length) {
    const c = text.charCodeAt(i);
    if (c === quote) {
      const close = closingQuote(text, i);
      const seen = stack.length > 0 ? stack[stack.length - 1]! : null;
      if (expectKey && seen !== null) {
        const duplicate = remember(text, stack, seen, i + 1, close);
        if (duplicate !== undefined) return duplicate;
      }
      expectKey = false;
      i = close + 1;
      continue;
    }
    switch (c) {
      case 0x7b: // {
        stack.push([]);
        expectKey = true;
        break;
      case 0x5b: // [
        stack.push(null);
        expectKey = false;
        break;
      case 0x7d: // }
      case 0x5d: // ]
        stack.pop();
        expectKey = false;
        break;
      case 0x2c: // ,
        expectKey = stack.length > 0 && stack[stack.length - 1] !== null;
        break;
      case 0x3a: // :
        expectKey = false;
        break;
    }
    i++;
  }
  return undefined;
}

/** The index of the quote closing the string opened at `open`: the next one not escaped. */
function closingQuote(text: string, open: number): number {
  let from = open + 1;
  for (;;) {
    const at = text.indexOf('"', from);
    if (at < 0) return text.length; // not valid JSON; JSON.parse would have refused it
    // Escaped when an odd run of backslashes stands right before it.
    let run = 0;
    while (text.charCodeAt(at - 1 - run) === backslash) run++;
    if (run % 2 === 0) return at;
    from = at + 1;
  }
}

/** Adds the name at [start, end) to the innermost object's names; returns it when it was there already. */
function remember(text: string, stack: (SeenNames | null)[], seen: SeenNames, start: number, end: number): string | undefined {
  let escaped = false;
  for (let k = start; k < end; k++) {
    if (text.charCodeAt(k) === backslash) {
      escaped = true;
      break;
    }
  }
  if (Array.isArray(seen)) {
    if (!escaped && seen.length < 32) {
      for (let k = 0; k < seen.length; k += 2) {
        if (sameText(text, seen[k]!, seen[k + 1]!, start, end)) return text.slice(start, end);
      }
      seen.push(start, end);
      return undefined;
    }
    // An escaped name compares by its decoded text; so do big objects, through a Set.
    const names = new Set<string>();
    for (let k = 0; k < seen.length; k += 2) names.add(text.slice(seen[k]!, seen[k + 1]!));
    stack[stack.length - 1] = names;
    seen = names;
  }
  const name = escaped ? (JSON.parse(text.slice(start - 1, end + 1)) as string) : text.slice(start, end);
  if (seen.has(name)) return name;
  seen.add(name);
  return undefined;
}

function sameText(text: string, aStart: number, aEnd: number, bStart: number, bEnd: number): boolean {
  if (aEnd - aStart !== bEnd - bStart) return false;
  for (let k = 0; k < aEnd - aStart; k++) if (text.charCodeAt(aStart + k) !== text.charCodeAt(bStart + k)) return false;
  return true;
}
