import { describe, expect, it } from "vitest";
import { parseAdminListen } from "./admin-server.js";

describe("admin.listen", () => {
  it("a bare port binds loopback only; host:port is taken as given", () => {
    expect(parseAdminListen("9901")).toEqual({ host: "127.0.0.1", port: 9901 });
    expect(parseAdminListen("0.0.0.0:9901")).toEqual({ host: "0.0.0.0", port: 9901 });
    expect(parseAdminListen("[::1]:9901")).toEqual({ host: "::1", port: 9901 });
  });

  it("refuses what is not a port or host:port", () => {
    expect(() => parseAdminListen("99999")).toThrow(/65535/);
    expect(() => parseAdminListen("localhost")).toThrow(/host:port/);
    expect(() => parseAdminListen(":9901")).toThrow(/host:port/);
  });
});
