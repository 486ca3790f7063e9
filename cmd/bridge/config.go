package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// defaultAddr is where the bridge listens, and clients look, by default.
const defaultAddr = "127.0.0.1:8098"

// common are the settings every subcommand shares: where the bridge is and
// which token to use.
type common struct {
	addr      string
	token     string
	tokenFile string
}

// register defines the shared flags on fs, with defaults from the
// environment (BRIDGE_ADDR, then WEBSOCKET_URL; BRIDGE_TOKEN;
// BRIDGE_TOKEN_FILE).
func (c *common) register(fs *flag.FlagSet) {
	c.registerAddr(fs)
	c.registerToken(fs)
}

// registerAddr defines only --addr, for subcommands that need no token.
func (c *common) registerAddr(fs *flag.FlagSet) {
	fs.StringVar(&c.addr, "addr", envAddr(), "`host:port` of the bridge (env BRIDGE_ADDR, else WEBSOCKET_URL); an empty host means 127.0.0.1")
}

// registerToken defines only the token flags (--token, --token-file), for
// subcommands that do not talk to the bridge.
func (c *common) registerToken(fs *flag.FlagSet) {
	fs.StringVar(&c.token, "token", os.Getenv("BRIDGE_TOKEN"), "the bridge's `token` (env BRIDGE_TOKEN)")
	fs.StringVar(&c.tokenFile, "token-file", os.Getenv("BRIDGE_TOKEN_FILE"), "`file` holding the token (env BRIDGE_TOKEN_FILE; default "+defaultTokenFileForHelp()+")")
}

// envAddr returns BRIDGE_ADDR, else the host:port of WEBSOCKET_URL (as
// AYON sets it, e.g. ws://localhost:8097/ws/), else the default.
func envAddr() string {
	if a := os.Getenv("BRIDGE_ADDR"); a != "" {
		return a
	}
	if u, err := url.Parse(os.Getenv("WEBSOCKET_URL")); err == nil && u.Host != "" {
		return u.Host
	}
	return defaultAddr
}

// listenAddr normalizes an address to listen on: ":9000" and "9000" mean
// 127.0.0.1:9000 (an empty host is loopback, never all interfaces).
func listenAddr(addr string) (string, error) {
	if !strings.Contains(addr, ":") {
		addr = ":" + addr
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" {
		return "", fmt.Errorf("bad address %q: want host:port, e.g. 127.0.0.1:8098", addr)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port), nil
}

// dialAddr is the address a client dials: a wildcard host becomes 127.0.0.1.
func dialAddr(addr string) (string, error) {
	a, err := listenAddr(addr)
	if err != nil {
		return "", err
	}
	host, port, _ := net.SplitHostPort(a)
	if isWildcard(host) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port), nil
}

func isWildcard(host string) bool { return host == "0.0.0.0" || host == "::" || host == "" }

// isLoopback reports whether host names this machine only.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func defaultTokenFile() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("no user config dir for the default token file: %w (give --token-file)", err)
	}
	return filepath.Join(dir, "dccbridge", "token"), nil
}

func defaultTokenFileForHelp() string {
	if p, err := defaultTokenFile(); err == nil {
		return p
	}
	return "dccbridge/token in the user config dir"
}

// explicitToken returns the token given by --token, BRIDGE_TOKEN or a
// --token-file / BRIDGE_TOKEN_FILE, or "" when none was given.
func (c *common) explicitToken() (string, error) {
	if c.token != "" {
		return c.token, nil
	}
	if c.tokenFile != "" {
		return readToken(c.tokenFile)
	}
	return "", nil
}

// clientToken is the token a client sends: the explicit one, else the
// default file's if it exists, else none.
func (c *common) clientToken() (string, error) {
	if t, err := c.explicitToken(); t != "" || err != nil {
		return t, err
	}
	path, err := defaultTokenFile()
	if err != nil {
		return "", nil
	}
	t, err := readToken(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	return t, err
}

func readToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("reading the token file: %w", err)
	}
	t := strings.TrimSpace(string(b))
	if t == "" {
		return "", fmt.Errorf("the token file %s is empty", path)
	}
	return t, nil
}

// randomHex returns n random bytes as hex.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// ensureTokenFile returns the token in path, creating the file with a
// random token and mode 0600 if it is missing.
func ensureTokenFile(path string) (token string, err error) {
	t, err := readToken(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return t, err
	}
	t = randomHex(24)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("creating the token file: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) { // another process made it first
		return readToken(path)
	}
	if err != nil {
		return "", fmt.Errorf("creating the token file: %w", err)
	}
	defer f.Close()
	if _, err := f.WriteString(t + "\n"); err != nil {
		return "", fmt.Errorf("writing the token file: %w", err)
	}
	return t, nil
}
