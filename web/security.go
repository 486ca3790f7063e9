package web

import (
	"crypto/subtle"
	"net"
	"net/http"
	"net/url"
	"path"
	"strings"
)

// access is what the security check decided for one request.
type access struct {
	// authorized: no token is needed, or a valid one was given.
	authorized bool
	// tokenNeeded: a token is needed and none was given (a websocket
	// upgrade is then accepted unauthorized; other endpoints answer 401).
	tokenNeeded bool
}

// check applies the security rules (docs/protocol.md, Security) to r: the
// Host header, the Origin, the token. It writes the refusal and returns ok
// false when the request must stop here. open endpoints (/healthz, /readyz,
// /sdk/) never need a token.
func (s *Server) check(w http.ResponseWriter, r *http.Request, open bool) (a access, ok bool) {
	fileLike, ok := s.checkHostOrigin(w, r)
	if !ok {
		return a, false
	}
	if open {
		return access{authorized: true}, true
	}
	a, wrong := s.tokenAccess(r, fileLike)
	if wrong {
		s.refuse(w, r, http.StatusUnauthorized, "unauthorized: wrong token ("+s.tokenHint()+")")
		return a, false
	}
	return a, true
}

// checkHostOrigin applies the Host and Origin rules (docs/protocol.md,
// Security) to r, writing the refusal when it fails; fileLike reports a null
// or file:// origin.
func (s *Server) checkHostOrigin(w http.ResponseWriter, r *http.Request) (fileLike, ok bool) {
	if !s.hostAllowed(r.Host) {
		s.refuse(w, r, http.StatusForbidden, "host not allowed: the bridge answers only to loopback names (127.0.0.1, localhost) or its configured address")
		return false, false
	}
	origin := r.Header.Get("Origin")
	fileLike = origin == "null" || strings.HasPrefix(origin, "file://")
	switch {
	case origin == "" || s.sameOrigin(r, origin):
	case fileLike:
	case s.originAllowed(origin):
	default:
		s.refuse(w, r, http.StatusForbidden, "origin not allowed: "+origin+" (start the bridge with --allow-origin to admit it)")
		return false, false
	}
	return fileLike, true
}

// tokenAccess applies the token rules (docs/protocol.md, Security) to r;
// wrong reports a token given that is not the bridge's.
func (s *Server) tokenAccess(r *http.Request, fileLike bool) (a access, wrong bool) {
	token, given := requestToken(r)
	if given && !s.tokenValid(token) {
		return a, true
	}
	needed := s.opts.TokenInForce || (fileLike && !s.allowNull)
	return access{authorized: !needed || given, tokenNeeded: needed && !given}, false
}

func (s *Server) refuse(w http.ResponseWriter, r *http.Request, code int, msg string) {
	s.log.Warn("request refused", "status", code, "path", r.URL.Path, "host", r.Host, "origin", r.Header.Get("Origin"), "remote", r.RemoteAddr, "reason", msg)
	if code == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="dccbridge"`)
	}
	http.Error(w, msg, code)
}

// requestToken returns the token of r: Authorization: Bearer, else ?token=.
func requestToken(r *http.Request) (string, bool) {
	if h := r.Header.Get("Authorization"); len(h) > len("Bearer ") && strings.EqualFold(h[:len("Bearer ")], "Bearer ") {
		return strings.TrimSpace(h[len("Bearer "):]), true // the scheme is case-insensitive (RFC 9110 §11.1)
	}
	if q := r.URL.Query(); q.Has("token") {
		return q.Get("token"), true
	}
	return "", false
}

func (s *Server) tokenValid(t string) bool {
	return s.opts.Token != "" && subtle.ConstantTimeCompare([]byte(t), []byte(s.opts.Token)) == 1
}

// hostAllowed reports whether the Host header names a loopback host or the
// configured address; a bridge bound to a wildcard address (token in force)
// answers to any name.
func (s *Server) hostAllowed(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if strings.EqualFold(host, "localhost") || strings.EqualFold(host, s.bindHost) {
		return true
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return true
	}
	return s.bindHost == "0.0.0.0" || s.bindHost == "::" // an empty Addr is loopback only
}

func (s *Server) sameOrigin(r *http.Request, origin string) bool {
	u, err := url.Parse(origin)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && strings.EqualFold(u.Host, r.Host)
}

// originAllowed matches origin against the --allow-origin patterns, as
// coder/websocket does: a pattern with "://" matches scheme://host, any
// other matches the host (path.Match syntax). The pattern "null" stands for
// the null origin only (see check), never for a host named null.
func (s *Server) originAllowed(origin string) bool {
	u, err := url.Parse(origin)
	if err != nil {
		return false
	}
	for _, p := range s.opts.AllowOrigins {
		if p == "null" {
			continue
		}
		target := u.Host
		if strings.Contains(p, "://") {
			target = u.Scheme + "://" + u.Host
		}
		if ok, _ := path.Match(strings.ToLower(p), strings.ToLower(target)); ok {
			return true
		}
	}
	return false
}
