# Vane's runtime image, for users who build with Docker (or podman/buildah) from base images:
#
#   docker build -t vane:0.1.0 .
#   docker run --rm vane:0.1.0 --version
#
# The builder compiles the TypeScript (npm run build, through npm pack's prepack) and lays out
# the packed package in /app with its production dependencies only, at the versions
# package-lock.json pins; the runtime stage holds Node and /app, nothing else of Vane's.
# The image runs compiled JavaScript only, as uid:gid 65532 (distroless' "nonroot"; no
# /etc/passwd entry is needed: HOME is /tmp), and writes nothing outside /tmp, so pods can run
# it with readOnlyRootFilesystem: true and an emptyDir on /tmp.
#
# Build args:
#   NODE_IMAGE     the builder: Node 24 with npm, sh, tar and find (default node:24-bookworm-slim)
#   RUNTIME_IMAGE  the runtime: Node 24 at /usr/local/bin/node, no shell needed (default
#                  node:24-bookworm-slim). A distroless nodejs24 image works once ENTRYPOINT
#                  names its /nodejs/bin/node.
#   VERSION, REVISION  values of the org.opencontainers.image.version/revision labels
#
# No registry at hand? scripts/build-image.sh builds the same layout from scratch with buildah
# (no base image at all) and saves it as an OCI archive; tests/integration/dockerfile.test.ts
# builds this file with buildah against locally made stand-ins for the two base images.
ARG NODE_IMAGE=node:24-bookworm-slim
ARG RUNTIME_IMAGE=node:24-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
# --ignore-scripts: no dependency needs an install script here, and the `node` devDependency's
# would download a second Node 24; the builder's own node runs tsc.
RUN npm ci --ignore-scripts --prefer-offline --no-audit --no-fund --loglevel=error
COPY . .
RUN npm pack --pack-destination /tmp --loglevel=error \
 && mkdir /app \
 && tar -xzf /tmp/vane-*.tgz -C /app --strip-components=1 \
 && cp package-lock.json /app/ \
 && cd /app \
 && npm ci --omit=dev --ignore-scripts --prefer-offline --no-audit --no-fund --loglevel=error \
 && rm package-lock.json \
 && find node_modules -type f \( -name '*.d.ts' -o -name '*.d.mts' -o -name '*.d.cts' -o -name '*.map' \) -exec rm -f {} + \
 && if find /app -path /app/node_modules -prune -o -name '*.ts' -print | grep -q .; then echo 'TypeScript in /app' >&2; exit 1; fi

FROM ${RUNTIME_IMAGE}
ARG VERSION=""
ARG REVISION=""
LABEL org.opencontainers.image.title="vane" \
      org.opencontainers.image.description="Kubernetes ingress controller with progressive delivery built in" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
COPY --from=build /app /app
WORKDIR /app
ENV NODE_ENV=production HOME=/tmp
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/node", "/app/bin/vane.js"]
CMD []
