# Static blacksky binary on a distroless base, running as a non-root user.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN mkdir -p /out/data && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/blacksky ./cmd/blacksky

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/blacksky /usr/local/bin/blacksky
# The data directory must belong to the user that writes the SQLite file.
COPY --from=build --chown=nonroot:nonroot /out/data /data
ENV DATA_DIR=/data PORT=8080
VOLUME /data
EXPOSE 8080
USER nonroot:nonroot
ENTRYPOINT ["/usr/local/bin/blacksky"]
CMD ["run"]
