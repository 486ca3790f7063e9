package web

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"net/http"
	"strings"
	"time"

	sdk "github.com/dccbridge/dccbridge/clients/js"
)

// handleSDK serves the panel SDK (clients/js) under /sdk/: bridge.js,
// bridge.classic.js and bridge.d.ts. It needs no token (docs/protocol.md,
// Security) and lets any origin read the files, so a file:// page (origin
// null) can load the module, which browsers fetch in CORS mode.
func (s *Server) handleSDK(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "the SDK is read with GET", http.StatusMethodNotAllowed)
		return
	}
	name := strings.TrimPrefix(r.URL.Path, "/sdk/")
	if name == "" || strings.Contains(name, "/") {
		http.NotFound(w, r)
		return
	}
	b, err := fs.ReadFile(sdk.Files, name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	switch {
	case strings.HasSuffix(name, ".js"):
		h.Set("Content-Type", "text/javascript; charset=utf-8")
	default: // bridge.d.ts: TypeScript has no registered type a browser acts on
		h.Set("Content-Type", "text/plain; charset=utf-8")
	}
	sum := sha256.Sum256(b)
	h.Set("ETag", `"`+hex.EncodeToString(sum[:8])+`"`)
	h.Set("Cache-Control", "no-cache") // revalidate: the SDK changes with the bridge
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("X-Content-Type-Options", "nosniff")
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(b))
}
