import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["src/**/*.test.ts", "test/**/*.test.ts"],
    // Integration tests start real servers on port 0; files run in parallel processes.
    pool: "forks",
    testTimeout: 20_000,
    hookTimeout: 30_000,
  },
});
