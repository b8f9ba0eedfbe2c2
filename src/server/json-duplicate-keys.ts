/** Names seen in one open object; an array until it is big enough for a Set to pay. */
type SeenNames = string[] | Set<string>;

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
        const raw = text.slice(i + 1, close);
        const name = raw.includes("\\") ? (JSON.parse(text.slice(i, close + 1)) as string) : raw;
        if (remember(stack, seen, name)) return name;
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

/** Adds `name` to the innermost object's names; true when it was there already. */
function remember(stack: (SeenNames | null)[], seen: SeenNames, name: string): boolean {
  if (Array.isArray(seen)) {
    if (seen.includes(name)) return true;
    seen.push(name);
    if (seen.length > 16) stack[stack.length - 1] = new Set(seen);
    return false;
  }
  if (seen.has(name)) return true;
  seen.add(name);
  return false;
}
