# tuzhan-cdc: the bridge (`run`) and, with another command, the platform simulator (`mock-api`).
# Build: docker build -t tuzhan-cdc .     Run: see docker-compose.yml.
#
# Node 24 (LTS until April 2028) on Debian 12; the code itself runs on Node 20.19 or newer. The
# image carries the runtime dependencies only: `demo` needs PostgreSQL's server binaries or the
# embedded-postgres package (a dev dependency), so it runs from a checkout, not from here.

FROM node:24-bookworm-slim AS build
WORKDIR /app
# Dependencies first, so a source change does not reinstall them. --ignore-scripts: the `prepare`
# script builds, and the sources are not here yet.
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY . .
# `npm pack` keeps exactly what package.json `files` publishes (bin, dist, sql, config), so the
# runtime stage gets the same tree a user of the npm package gets.
RUN npm run build \
  && npm pack --ignore-scripts --pack-destination /tmp \
  && mkdir /pkg \
  && tar -xzf /tmp/tuzhan-cdc-*.tgz -C /pkg --strip-components=1

FROM node:24-bookworm-slim AS runtime
# The heap caps: without them V8 lets short-lived per-row garbage grow the heap far past the live
# set (~40 MB at maxBufferedRows 10000) before collecting it. With these the 1M-row drain of the
# bench peaks near 141 MB of RSS. The young generation trades memory for CPU: semi-spaces of 4 MB
# peak at 135 MB but cost the bridge 34 us a row instead of 30 (16 MB: 29 us, 155 MB). See
# docs/benchmark.md. Raise the old space with maxBufferedRows (about 1 KB of heap per buffered
# row). The bench reads this line.
ENV NODE_ENV=production \
    NODE_OPTIONS="--max-old-space-size=96 --max-semi-space-size=8" \
    TUZHAN_CDC_HEALTH_URL=http://127.0.0.1:9464/healthz
WORKDIR /app
COPY --from=build /pkg/ ./
COPY package-lock.json ./
# --ignore-scripts: `prepare` would try to build without the compiler; no runtime dependency has
# an install script of its own.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
  && npm cache clean --force
COPY docker/bridge.yaml ./docker/bridge.yaml
USER node
EXPOSE 9464
# /healthz of the ops endpoint (config `http.listen`); set TUZHAN_CDC_HEALTH_URL if it moves.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch(process.env.TUZHAN_CDC_HEALTH_URL).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["node", "bin/tuzhan-cdc.js"]
CMD ["run"]
