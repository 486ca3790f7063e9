package main

import (
	"bytes"
	"errors"
)

// envelope holds the raw bytes of the top-level JSON-RPC members a bench
// peer looks at. Each field aliases the message it was parsed from and is
// nil when the member is absent. Values are not validated or unescaped:
// ID is the exact id token (quotes included for a string id), Params and
// Result the exact value bytes, so a peer can echo them without re-encoding.
type envelope struct {
	ID     []byte
	Method []byte // the string token, quotes included
	Params []byte
	Result []byte
	Error  []byte
	Meta   []byte
}

// errBadEnvelope is returned by parseEnvelope for a message that is not a
// JSON object it can walk.
var errBadEnvelope = errors.New("bridgebench: message is not a JSON object")

// parseEnvelope walks the top level of one JSON object and records where the
// envelope members are, without decoding nested values. It is the decoder
// both peers use against the relay and the bridge alike: far cheaper than
// encoding/json and never allocating, so peer cost stays small next to what
// is measured. It is not a validator: member names are compared raw (no
// escapes), and a value is only scanned far enough to find its end.
func parseEnvelope(msg []byte) (envelope, error) {
	var e envelope
	i := skipSpace(msg, 0)
	if i >= len(msg) || msg[i] != '{' {
		return e, errBadEnvelope
	}
	i = skipSpace(msg, i+1)
	if i < len(msg) && msg[i] == '}' {
		return e, nil
	}
	for {
		if i >= len(msg) || msg[i] != '"' {
			return e, errBadEnvelope
		}
		keyEnd, ok := skipString(msg, i)
		if !ok {
			return e, errBadEnvelope
		}
		key := msg[i+1 : keyEnd-1]
		i = skipSpace(msg, keyEnd)
		if i >= len(msg) || msg[i] != ':' {
			return e, errBadEnvelope
		}
		start := skipSpace(msg, i+1)
		end, ok := skipValue(msg, start)
		if !ok {
			return e, errBadEnvelope
		}
		val := msg[start:end:end]
		switch string(key) { // no allocation: the compiler special-cases this
		case "id":
			e.ID = val
		case "method":
			e.Method = val
		case "params":
			e.Params = val
		case "result":
			e.Result = val
		case "error":
			e.Error = val
		case "meta":
			e.Meta = val
		}
		i = skipSpace(msg, end)
		if i >= len(msg) {
			return e, errBadEnvelope
		}
		switch msg[i] {
		case ',':
			i = skipSpace(msg, i+1)
		case '}':
			return e, nil
		default:
			return e, errBadEnvelope
		}
	}
}

// isSpace reports whether c is JSON insignificant whitespace.
func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r'
}

// skipSpace returns the index of the first non-space byte at or after i.
func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// skipString returns the index just past the string token starting at
// b[i] == '"', and false when the string is not terminated.
func skipString(b []byte, i int) (int, bool) {
	i++
	for i < len(b) {
		j := bytes.IndexAny(b[i:], `"\`)
		if j < 0 {
			return 0, false
		}
		i += j
		if b[i] == '\\' {
			i += 2
			continue
		}
		return i + 1, true
	}
	return 0, false
}

// skipValue returns the index just past the JSON value starting at b[i],
// and false when it runs off the end of b or starts with an impossible
// byte. Objects and arrays are skipped by counting brackets outside strings.
func skipValue(b []byte, i int) (int, bool) {
	if i >= len(b) {
		return 0, false
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				end, ok := skipString(b, i)
				if !ok {
					return 0, false
				}
				i = end
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1, true
				}
			}
			i++
		}
		return 0, false
	case ',', ':', '}', ']':
		return 0, false
	default: // number, true, false, null
		start := i
		for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ']' && !isSpace(b[i]) {
			i++
		}
		return i, i > start
	}
}

// objectMember returns the raw bytes of the value of member name in the
// JSON object obj (quotes included for a string), or nil when obj is not
// an object or has no such member. Like parseEnvelope it compares names
// raw, scans nested values only to find their end, and does not allocate;
// the result aliases obj. The resume scenario uses it to look one level
// into meta, a hello result and an event's data.
func objectMember(obj []byte, name string) []byte {
	i := skipSpace(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return nil
	}
	i = skipSpace(obj, i+1)
	for i < len(obj) && obj[i] == '"' {
		keyEnd, ok := skipString(obj, i)
		if !ok {
			return nil
		}
		key := obj[i+1 : keyEnd-1]
		i = skipSpace(obj, keyEnd)
		if i >= len(obj) || obj[i] != ':' {
			return nil
		}
		start := skipSpace(obj, i+1)
		end, ok := skipValue(obj, start)
		if !ok {
			return nil
		}
		if string(key) == name {
			return obj[start:end:end]
		}
		i = skipSpace(obj, end)
		if i >= len(obj) || obj[i] != ',' {
			return nil
		}
		i = skipSpace(obj, i+1)
	}
	return nil
}
