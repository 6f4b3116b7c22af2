# Static blacksky binary on a distroless base, running as a non-root user
# (uid 65532). `docker build .` from a clean clone; CI runs the build stage's
# steps without Docker (.ci/docker-steps), so keep its paths relative to
# WORKDIR. Stamp a version with --build-arg VERSION=$(git describe --always).
FROM golang:1.26 AS build
WORKDIR /src
# go.mod's replace directive points at third_party/whatsmeow: it must be in
# place before anything reads the module graph. Dependencies get their own
# layer, rebuilt only when go.mod, go.sum or the patched copy change.
COPY go.mod go.sum ./
COPY third_party ./third_party
RUN go mod download
COPY . .
ARG VERSION=
RUN mkdir -p out/data && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o out/blacksky ./cmd/blacksky

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /src/out/blacksky /usr/local/bin/blacksky
# The data directory must belong to the user that writes the SQLite file; a
# named volume starts as a copy of it. A bind-mounted host directory keeps its
# owner: blacksky then stops with one line saying to chown it or use --user.
COPY --from=build --chown=nonroot:nonroot /src/out/data /data
ENV DATA_DIR=/data PORT=8080
VOLUME /data
EXPOSE 8080
USER nonroot:nonroot
# No shell or curl in distroless: the binary checks its own /healthz.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 CMD ["/usr/local/bin/blacksky", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/blacksky"]
CMD ["run"]
