# Static, non-root image. Without a container engine, scripts/build-image.sh
# produces the same layout as a tarball (make image).
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X github.com/vault-csi-provider/vault-csi-provider/internal/buildinfo.Version=${VERSION}" \
      -o /out/vault-csi-provider ./cmd/provider

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/vault-csi-provider /vault-csi-provider
USER 65532:65532
ENTRYPOINT ["/vault-csi-provider"]
