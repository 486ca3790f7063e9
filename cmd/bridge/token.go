package main

import (
	"fmt"
	"io"
	"os"
)

const tokenAbout = `
Print the bridge's token: the one given by --token, BRIDGE_TOKEN or
--token-file (BRIDGE_TOKEN_FILE), else the one in the default token file,
which is created (mode 0600, a random token) if it is missing.

A bridge started without a token uses the default file's token to admit
file:// and null-origin panels (CEP); local processes need none. A bridge
given a token explicitly, or listening on a non-loopback address, requires
it of every client. Clients (bridge call, bridge sessions) send it for you.
`

// tokenCmd runs `bridge token`.
func tokenCmd(args []string, stdout, stderr io.Writer) int {
	var c common
	sc := newSubcommand("token", "[flags]", tokenAbout, stdout, stderr)
	c.registerToken(sc.fs)
	newToken := sc.fs.Bool("new", false, "print a new random token (32 hex digits) and store it nowhere: give it to the bridge with --token, BRIDGE_TOKEN or --token-file, and to its clients")
	pos, code, ok := sc.parse(args)
	if !ok {
		return code
	}
	if len(pos) > 0 {
		return sc.fail(usageError("unexpected argument %q", pos[0]))
	}
	if *newToken {
		_, _ = io.WriteString(stdout, randomHex(16)+"\n")
		return exitOK
	}
	t, err := c.explicitToken()
	if err != nil {
		return sc.fail(err)
	}
	source := c.tokenSource()
	if t == "" {
		path, err := defaultTokenFile()
		if err != nil {
			return sc.fail(err)
		}
		if t, err = ensureTokenFile(path); err != nil {
			return sc.fail(err)
		}
		source = "the default token file " + path + ": the token of a bridge started without one of its own (a bridge given --token, BRIDGE_TOKEN or --token-file has that one)"
	}
	_, _ = io.WriteString(stdout, t+"\n")
	fmt.Fprintln(stderr, "bridge token: from "+source)
	return exitOK
}

// tokenSource names where an explicit token comes from.
func (c *common) tokenSource() string {
	switch {
	case c.token != "" && c.token == os.Getenv("BRIDGE_TOKEN"):
		return "BRIDGE_TOKEN"
	case c.token != "":
		return "--token"
	case c.tokenFile != "" && c.tokenFile == os.Getenv("BRIDGE_TOKEN_FILE"):
		return "BRIDGE_TOKEN_FILE (" + c.tokenFile + ")"
	case c.tokenFile != "":
		return "--token-file " + c.tokenFile
	}
	return ""
}
