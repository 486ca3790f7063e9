module github.com/dccbridge/dccbridge

go 1.26.8

require (
	github.com/coder/websocket v1.8.15
	github.com/sourcegraph/jsonrpc2 v0.2.3
)

require golang.org/x/sync v0.24.0 // indirect
