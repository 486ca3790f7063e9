# dccbridge in a container: a static Go binary on a distroless base, run as
# a non-root user.
#
#   docker build -t dccbridge .
#   docker run -d -e BRIDGE_TOKEN=$(openssl rand -hex 24) -p 127.0.0.1:8098:8098 dccbridge
#
# Inside the container the bridge must listen on 0.0.0.0 to be reachable
# through a published port. A non-loopback bind puts the token in force, and
# the bridge refuses to start without one: give BRIDGE_TOKEN (or --token /
# --token-file). docker-compose.yml does this.

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=docker
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/bridge ./cmd/bridge

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/bridge /bridge
USER nonroot:nonroot
EXPOSE 8098
# /healthz never needs the token; `bridge health` exits 0 when it answers.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["/bridge", "health", "--addr", "127.0.0.1:8098"]
ENTRYPOINT ["/bridge"]
CMD ["serve", "--addr", "0.0.0.0:8098"]
