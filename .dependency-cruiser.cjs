// Dependency rules for Sluice, checked by `npm run lint` (`depcruise src test`).
//
// The layers of src/, lowest first. A layer may import itself and any layer before it in
// this list, never one after it. gen/ (generated protobuf code) and node_modules are open
// to every layer. Test files (*.test.ts) are exempt from the layer rules, not from the
// cycle rule. This array is the only place the order is written down.
const LAYERS = [
  "errors",
  "config",
  "telemetry",
  "identity",
  "state",
  "wire",
  "transport",
  "providers",
  "routing",
  "limits",
  "cache",
  "resilience",
  "api",
  "interceptors",
  "server",
  "app",
  "main.ts",
];

const TEST_FILE = "\\.test\\.ts$";
const escape = (text) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
// "errors" → the folder src/errors/; "main.ts" → the file src/main.ts.
const layerPath = (layer) => (layer.endsWith(".ts") ? `^src/${escape(layer)}$` : `^src/${escape(layer)}/`);

const layerRules = LAYERS.slice(0, -1).map((layer, index) => ({
  name: `layer-${layer.replace(/\.ts$/, "")}`,
  comment:
    `src/${layer} may import only itself and lower layers (${LAYERS.slice(0, index).join(", ") || "none"}), ` +
    `never ${LAYERS.slice(index + 1).join(", ")}. Order: .dependency-cruiser.cjs LAYERS.`,
  severity: "error",
  from: { path: layerPath(layer), pathNot: TEST_FILE },
  to: { path: LAYERS.slice(index + 1).map(layerPath) },
}));

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: "no-circular",
      comment: "No import cycles, type-only imports included, test files included.",
      severity: "error",
      from: {},
      to: { circular: true },
    },
    ...layerRules,
    {
      name: "src-in-a-layer",
      comment: "Every module of src/ is in one of the LAYERS (a new folder gets its place in the order first).",
      severity: "error",
      from: { path: "^src/", pathNot: [...LAYERS.map(layerPath), TEST_FILE] },
      to: {},
    },
    {
      name: "no-src-to-test",
      comment:
        "Gateway code must not import anything under test/ (it would ship in dist/). " +
        "Unit tests beside the code (src/**/*.test.ts) may use test/helpers and test/fixtures.",
      severity: "error",
      from: { path: "^src/", pathNot: TEST_FILE },
      to: { path: "^test/" },
    },
    {
      name: "no-import-of-test-files",
      comment: "Only a test may import a *.test.ts file (and none should).",
      severity: "error",
      from: { pathNot: TEST_FILE },
      to: { path: TEST_FILE },
    },
    {
      name: "wire-has-no-io",
      comment: "src/wire is codecs and envelopes only: no sockets, no files, no HTTP client.",
      severity: "error",
      from: { path: "^src/wire/" },
      to: {
        path: [
          "^(node:)?(net|tls|dgram|http|https|http2|fs|fs/promises|child_process)$",
          "(^|/)node_modules/undici(-types)?/",
        ],
      },
    },
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    exclude: { path: ["^test/clients/\\.build/", "^dist/"] },
    // Type-only imports are dependencies too: a lower layer naming a higher layer's type
    // is as much a layering break as calling it.
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
    enhancedResolveOptions: {
      exportsFields: ["exports"],
      conditionNames: ["import", "require", "node", "default", "types"],
    },
    reporterOptions: {
      text: { highlightFocused: true },
    },
  },
};
