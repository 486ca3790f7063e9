//go:build ignore

// gen writes bridge.classic.js, the classic-script build of bridge.js that
// sets the one global DccBridge. Run it with `go generate` in clients/js.
package main

import (
	"log"
	"os"

	"github.com/dccbridge/dccbridge/clients/js/internal/classic"
)

func main() {
	src, err := os.ReadFile("bridge.js")
	if err != nil {
		log.Fatal(err)
	}
	out, err := classic.Build(src)
	if err != nil {
		log.Fatalf("bridge.js: %v", err)
	}
	if err := os.WriteFile("bridge.classic.js", out, 0o644); err != nil {
		log.Fatal(err)
	}
}
