# syntax=docker/dockerfile:1
#
# driftline, the service image: `driftline run` with the WebAssembly SIMD kernels built in the image.
#
#   docker build -t driftline:0.1.0 .
#   docker run --rm -p 127.0.0.1:8080:8080 -p 127.0.0.1:9464:9464 \
#     -v "$PWD/deploy/driftline.yaml:/etc/driftline/driftline.yaml:ro" -v driftline-data:/var/lib/driftline driftline:0.1.0
#
# No config is baked in: a config names the feed's shape, the learner and a bearer token, so it is mounted at
# /etc/driftline/driftline.yaml (deploy/compose.yaml does that). Tags are pinned to a version here; pin them to a
# digest (node:22.22.0-bookworm-slim@sha256:...) in production. The structure of this file is checked by
# test/deploy.test.ts against the rules in docs/deploy.md (no Docker engine runs in this project's tests).

# --- deps: the production dependencies only -------------------------------------------------------------------
# Install scripts off: the package's own `prepare` is the build (it needs the dev dependencies, in the next
# stage), and the optional @tensorflow/tfjs-node would download libtensorflow, which the service never uses (its
# per-tick path runs on the WASM kernels; TensorFlow.js falls back to its WASM backend and says so).
FROM node:22.22.0-bookworm-slim AS deps
WORKDIR /src
ENV npm_config_update_notifier=false
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
 && npm cache clean --force

# --- build: the WASM kernels and dist/ ------------------------------------------------------------------------
FROM node:22.22.0-bookworm-slim AS build
WORKDIR /src
ENV npm_config_update_notifier=false
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json ./
COPY scripts ./scripts
COPY bin ./bin
COPY src ./src
# scripts/build.mjs: AssemblyScript -> build/kernels.wasm (validated: SIMD, imports env.memory only), then tsc -> dist/
RUN npm run build \
 && test -s build/kernels.wasm \
 && test -f dist/cli/main.js

# --- runtime: node, the built package and its production dependencies, as a non-root user ----------------------
FROM node:22.22.0-bookworm-slim AS runtime
ENV NODE_ENV=production \
    DRIFTLINE_HEALTHZ_URL=http://127.0.0.1:9464/healthz
WORKDIR /app
# A system user of its own; /var/lib/driftline (checkpoints) is the one place it writes. A named volume mounted
# there starts with this ownership.
RUN groupadd --system --gid 10001 driftline \
 && useradd --system --uid 10001 --gid driftline --home-dir /var/lib/driftline --no-create-home --shell /usr/sbin/nologin driftline \
 && mkdir -p /var/lib/driftline/checkpoints /etc/driftline \
 && chown -R driftline:driftline /var/lib/driftline
# The code stays owned by root: the service cannot rewrite itself.
COPY --from=deps /src/node_modules ./node_modules
COPY --from=build /src/package.json ./package.json
COPY --from=build /src/bin ./bin
COPY --from=build /src/dist ./dist
COPY --from=build /src/build ./build
USER driftline
VOLUME ["/var/lib/driftline"]
# 8080: WebSocket ingest and predictions (sources.websocket.port); 9464: /metrics, /healthz, /readyz (metrics.port)
EXPOSE 8080 9464
# Slim images have no curl: node does the GET. /healthz never needs the token (docs/metrics.md).
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch(process.env.DRIFTLINE_HEALTHZ_URL || 'http://127.0.0.1:9464/healthz', { signal: AbortSignal.timeout(4000) }).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# SIGTERM (docker stop) stops cleanly: no more input, every learner checkpointed, exit 0 (README, "Running on live streams").
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "bin/driftline.js"]
CMD ["run", "--config", "/etc/driftline/driftline.yaml"]
