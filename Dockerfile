# The gateway's image: compiled in a build stage, run from production dependencies only, as the unprivileged node user.
# docker build -t breakwater:0.1.0 .
# docker run -p 8080:8080 breakwater:0.1.0 start --config /etc/breakwater/gateway.yaml --demo

FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# The prepare script (tsc) would run before the sources are copied: build explicitly below instead. No dependency has
# an install script of its own.
RUN npm ci --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: prepare runs tsc, which is a dev dependency and not installed here; dist/ comes from the build stage.
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY bin ./bin
COPY config ./config
# The default config, at the path the default command reads; mount your own over it (compose and Kubernetes do).
COPY config/gateway.yaml /etc/breakwater/gateway.yaml
USER node
EXPOSE 8080
# Slim images have no curl: Node's own fetch asks the gateway's health endpoint (UP while the process serves).
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:8080/actuator/health').then((res) => process.exit(res.ok ? 0 : 1), () => process.exit(1))"]
# The gateway handles SIGTERM itself (graceful drain), so it runs as PID 1 without a shell in between.
ENTRYPOINT ["node", "bin/breakwater.js"]
CMD ["start", "--config", "/etc/breakwater/gateway.yaml"]
