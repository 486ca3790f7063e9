package main

import (
	"io"
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
	pos, code, ok := sc.parse(args)
	if !ok {
		return code
	}
	if len(pos) > 0 {
		return sc.fail(usageError("unexpected argument %q", pos[0]))
	}
	t, err := c.explicitToken()
	if err != nil {
		return sc.fail(err)
	}
	if t == "" {
		path, err := defaultTokenFile()
		if err != nil {
			return sc.fail(err)
		}
		if t, err = ensureTokenFile(path); err != nil {
			return sc.fail(err)
		}
	}
	_, _ = io.WriteString(stdout, t+"\n")
	return exitOK
}
