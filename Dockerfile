# millrace node image: `docker run -v millrace-data:/data millrace` runs
# `millrace node start --data-dir /data` with the embedded nats-server
# (pass `--nats nats://host:4222` to use an external one instead).
# deploy/compose.yml runs three nodes and a three-server NATS cluster from it.

# Node.js 26: the active LTS line since 2026-10-28 (24 is in maintenance).
# Bookworm, not trixie: its nats-server package is 2.9, the version millrace
# targets and its tests run against.
ARG NODE_IMAGE=node:26-bookworm-slim

# --- build: compile TypeScript, then keep only runtime dependencies ---------
FROM ${NODE_IMAGE} AS build
WORKDIR /app
# Dependencies first, so source edits do not invalidate the npm ci layer.
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
RUN npm run build && npm prune --omit=dev

# --- runtime -----------------------------------------------------------------
FROM ${NODE_IMAGE}
# The embedded default needs a local nats-server with JetStream (Debian: /usr/sbin);
# compose.yml runs its NATS cluster from this same binary.
RUN apt-get update \
 && apt-get install -y --no-install-recommends nats-server \
 && rm -rf /var/lib/apt/lists/*
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# Created and chowned before VOLUME: changes to a volume path after it are discarded.
RUN mkdir -p /data && chown node:node /data
VOLUME /data
USER node
ENTRYPOINT ["node", "dist/bin/millrace.js"]
CMD ["node", "start", "--data-dir", "/data"]
