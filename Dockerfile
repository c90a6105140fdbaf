# syntax=docker/dockerfile:1
# Build: libvips headers and cgo (bimg needs them).
FROM golang:1.26-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends libvips-dev pkg-config && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev COMMIT=unknown DATE=unknown
RUN CGO_ENABLED=1 go build -trimpath -ldflags "-s -w -X github.com/pms-dev/pms/cmd.version=${VERSION} \
      -X github.com/pms-dev/pms/cmd.commit=${COMMIT} -X github.com/pms-dev/pms/cmd.date=${DATE}" -o /out/pms .

# Run: the libvips runtime, CA certificates, a non-root user.
FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends libvips42 ca-certificates && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 pms && useradd --system --uid 10001 --gid 10001 --no-create-home pms
COPY --from=build /out/pms /usr/local/bin/pms
COPY config.yaml /etc/pms/config.yaml
# glibc reads MALLOC_ARENA_MAX at start: two arenas halve libvips' peak memory.
# VIPS_BLOCK_UNTRUSTED turns off the loaders libvips should not run on untrusted input.
ENV MALLOC_ARENA_MAX=2 VIPS_BLOCK_UNTRUSTED=1
# Numeric, so Kubernetes' runAsNonRoot can check it.
USER 10001:10001
EXPOSE 8080 8081
ENTRYPOINT ["pms", "--config", "/etc/pms/config.yaml"]
CMD ["serve"]
