package web

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"html"
	"io"
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
	if name == "" {
		s.listSDK(w)
		return
	}
	if strings.Contains(name, "/") {
		http.NotFound(w, r)
		return
	}
	b, err := fs.ReadFile(sdk.Files, name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	if strings.HasSuffix(name, ".js") {
		b = withDefaultURL(b, "ws://"+r.Host+"/ws")
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

// listSDK answers GET /sdk/ with the SDK's files and what each is for.
func (s *Server) listSDK(w http.ResponseWriter) {
	about := map[string]string{
		"bridge.js":         "the SDK as an ES module: import { Bridge } from '/sdk/bridge.js'",
		"bridge.classic.js": "the same for a classic <script> (CEP 9's Chromium 61): window.DccBridge",
		"bridge.d.ts":       "TypeScript declarations",
	}
	entries, _ := fs.ReadDir(sdk.Files, ".")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	var b strings.Builder
	b.WriteString("<!doctype html>\n<title>dccbridge SDK</title>\n<h1>dccbridge panel SDK</h1>\n<ul>\n")
	for _, e := range entries {
		if e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		b.WriteString(`<li><a href="` + html.EscapeString(e.Name()) + `">` + html.EscapeString(e.Name()) + "</a> " + html.EscapeString(about[e.Name()]) + "</li>\n")
	}
	b.WriteString("</ul>\n")
	_, _ = io.WriteString(w, b.String())
}

// sdkDefaultURL is the line of the SDK that names the bridge a panel
// connects to when it gives no url.
const sdkDefaultURL = "const DEFAULT_URL = 'ws://127.0.0.1:8098/ws';"

// withDefaultURL returns the SDK src with its default URL set to url: a
// panel that loads the SDK from a bridge connects to that bridge. (The
// Host check has admitted the request's host: a loopback name or the
// bridge's own address.)
func withDefaultURL(src []byte, url string) []byte {
	quoted, _ := json.Marshal(url)
	return bytes.Replace(src, []byte(sdkDefaultURL), []byte("const DEFAULT_URL = "+string(quoted)+"; // the bridge that served this file"), 1)
}
