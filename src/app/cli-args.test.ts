import { describe, expect, it } from "vitest";
import { parseCliArgs, UsageError } from "./cli-args.js";

describe("command line", () => {
  it("reads --config and --listen", () => {
    expect(parseCliArgs(["--config", "a.yaml", "--listen", "127.0.0.1:0"], {})).toEqual({
      configFile: "a.yaml",
      listen: "127.0.0.1:0",
      help: false,
      version: false,
      check: false,
    });
    expect(parseCliArgs(["--listen=[::1]:9000"], {}).listen).toBe("[::1]:9000");
  });

  it("falls back to SLUICE_CONFIG and SLUICE_LISTEN; flags win", () => {
    const env = { SLUICE_CONFIG: "env.yaml", SLUICE_LISTEN: "0.0.0.0:9" };
    expect(parseCliArgs([], env)).toMatchObject({ configFile: "env.yaml", listen: "0.0.0.0:9", help: false });
    expect(parseCliArgs(["--listen", "127.0.0.1:1"], env).listen).toBe("127.0.0.1:1");
    expect(parseCliArgs([], { SLUICE_CONFIG: "", SLUICE_LISTEN: "" })).toMatchObject({
      configFile: undefined,
      listen: undefined,
      help: false,
    });
  });

  it("rejects unknown flags and bad addresses as usage errors", () => {
    expect(() => parseCliArgs(["--bogus"], {})).toThrow(UsageError);
    expect(() => parseCliArgs(["extra"], {})).toThrow(UsageError);
    expect(() => parseCliArgs(["--listen", "8080"], {})).toThrow(/invalid listen address "8080"/);
    expect(() => parseCliArgs([], { SLUICE_LISTEN: "nope" })).toThrow(UsageError);
  });

  it("--help / -h, --version / -v, --check", () => {
    expect(parseCliArgs(["-h"], {}).help).toBe(true);
    expect(parseCliArgs(["--help"], {}).help).toBe(true);
    expect(parseCliArgs(["-v"], {}).version).toBe(true);
    expect(parseCliArgs(["--version"], {}).version).toBe(true);
    expect(parseCliArgs(["--check", "--config", "x.yaml"], {})).toMatchObject({ check: true, configFile: "x.yaml" });
    expect(parseCliArgs([], {})).toMatchObject({ version: false, check: false });
  });
});
