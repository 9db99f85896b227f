# millrace node image: `docker run -v millrace-data:/data millrace` runs
# `millrace node start --data-dir /data` with the embedded nats-server
# (pass `--nats nats://host:4222` to use an external one instead).

# --- build: compile TypeScript, then keep only runtime dependencies ---------
FROM node:24-bookworm-slim AS build
WORKDIR /app
# Dependencies first, so source edits do not invalidate the npm ci layer.
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
RUN npm run build && npm prune --omit=dev

# --- runtime -----------------------------------------------------------------
FROM node:24-bookworm-slim
# The embedded default needs a local nats-server with JetStream (Debian: /usr/sbin).
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
