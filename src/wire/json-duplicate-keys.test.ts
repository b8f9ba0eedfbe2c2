import { describe, expect, it } from "vitest";
import { fromJsonString } from "@bufbuild/protobuf";
import { StructSchema } from "@bufbuild/protobuf/wkt";
import { findDuplicateKey } from "./json-duplicate-keys.js";

/** The duplicate protobuf-es's own check reports for `text` (a Struct takes any object), or undefined. */
function protobufEsDuplicate(text: string): string | undefined {
  try {
    fromJsonString(StructSchema, text);
    return undefined;
  } catch (err) {
    const match = /duplicate object key "(.*)"$/s.exec((err as Error).message);
    if (match === null) throw err;
    return match[1];
  }
}

describe("findDuplicateKey", () => {
  const cases = [
    '{"a":1,"b":2}',
    '{"a":1,"a":2}',
    '{"a":{"a":1},"b":{"a":2}}',
    '{"a":{"x":1,"x":2}}',
    '{"a":[{"k":1},{"k":1}]}',
    '{"a":[{"k":1,"k":1}]}',
    '{"a":"\\"a\\":1,","a":2}',
    '{"a":"\\\\","b":"\\\\\\"","a":3}',
    '{"a":"x\\\\","b":1}',
    '{"\\u0061":1,"a":2}',
    '{"a\\nb":1,"a\\u000ab":2}',
    '{"s":"{\\"a\\":1,\\"a\\":2}"}',
    '{"a":[1,"a",{"b":[{"a":1}],"a":0}],"c":{}}',
    '{"k0":0,"k1":1,"k2":2,"k3":3,"k4":4,"k5":5,"k6":6,"k7":7,"k8":8,"k9":9,"k10":10,"k11":11,"k12":12,"k13":13,"k14":14,"k15":15,"k16":16,"k17":17,"k3":0}',
    ' { "a" : 1 , "b" : [ ] , "a" : 2 } ',
    '{"emoji 🌊":1,"emoji 🌊":2}',
  ];
  it("finds exactly the duplicates protobuf-es's fromJsonString rejects", () => {
    for (const text of cases) expect(findDuplicateKey(text), text).toBe(protobufEsDuplicate(text));
  });

  it("agrees on long generated documents, duplicates at every depth", () => {
    let state = 7;
    const random = () => (state = (state * 1103515245 + 12345) % 2147483648) / 2147483648;
    const node = (depth: number): string => {
      if (depth > 3 || random() < 0.3)
        return JSON.stringify(random() < 0.5 ? `v${Math.floor(random() * 9)}\\"` : Math.floor(random() * 9));
      if (random() < 0.3) return `[${Array.from({ length: Math.floor(random() * 3) }, () => node(depth + 1)).join(",")}]`;
      const keys = Array.from({ length: Math.floor(random() * 5) }, () => `k${Math.floor(random() * 6)}`);
      return `{${keys.map((key) => `${JSON.stringify(key)}:${node(depth + 1)}`).join(",")}}`;
    };
    let duplicates = 0;
    for (let i = 0; i < 500; i++) {
      const text = `{"root":${node(0)}}`;
      const expected = protobufEsDuplicate(text);
      if (expected !== undefined) duplicates++;
      expect(findDuplicateKey(text), text).toBe(expected);
    }
    expect(duplicates).toBeGreaterThan(50);
  });
});
