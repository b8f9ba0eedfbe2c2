# Sluice container image. Build from the repository root:
#   docker build -t sluice .      (or: podman build -t sluice .)
# Run (the configuration is mounted, never baked in):
#   docker run --rm -p 8080:8080 -v "$PWD/sluice.yaml:/etc/sluice/sluice.yaml:ro" -e OPENAI_API_KEY sluice
# Mint a caller key (arguments replace CMD):
#   docker run --rm sluice --mint-key team-a --key-id prod
# Inside the container Sluice listens on 0.0.0.0:8080 (SLUICE_LISTEN), so the safety rule holds:
# without tenants (or auth.allowAnonymous) it refuses to start rather than serve anyone anonymously.
# test/integration/deploy-manifests.test.ts checks this file's invariants (stages, non-root user,
# exec-form ENTRYPOINT running node with package.json's start flags) and runs its command line.

# --- build: every dependency, TypeScript → dist/ -------------------------------------------------
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY gen ./gen
RUN npm run build

# --- runtime: production dependencies and the compiled code only ---------------------------------
FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production
# Every interface of the container: SLUICE_LISTEN overrides the configuration's `listen` (and a
# --listen flag overrides both).
ENV SLUICE_LISTEN=0.0.0.0:8080
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev && npm cache clean --force
# dist/src (the server) and dist/gen (the compiled protobuf descriptors, which reflection serves):
# the .proto sources are not read at runtime. Files stay owned by root: the process cannot change them.
COPY --from=build /app/dist ./dist
COPY bin ./bin
# The node image's unprivileged "node" user, numerically, so Kubernetes' runAsNonRoot can verify it.
USER 1000:1000
EXPOSE 8080 9901
# Sluice drains on SIGTERM (health NOT_SERVING, in-flight calls finish within server.drainTimeoutMs).
STOPSIGNAL SIGTERM
# node itself is PID 1 and gets the signal (npm would not forward it reliably); flags and launcher as in
# `npm start` (bin/sluice.mjs runs dist/ as it is: the image has no sources to rebuild from).
ENTRYPOINT ["node", "--max-semi-space-size=32", "/app/bin/sluice.mjs"]
CMD ["--config", "/etc/sluice/sluice.yaml"]
