package rpc

import (
	"bytes"
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// Decode reads one websocket text message: a single JSON-RPC object or a
// batch array. It never fails: every member comes back as an [Item] holding
// either a valid [Message] or the error the sender is owed.
//
// Invalid JSON gives one -32700 item; an empty array, a batch of more than
// [MaxBatch] members, or a top-level value that is not an object or array
// gives one -32600 item with batch false (the reply is then a single object,
// as the specification's examples show). Message fields alias data: the
// caller must not modify data while the items are in use.
func Decode(data []byte) (items []Item, batch bool) {
	if !json.Valid(data) {
		return []Item{{Err: Errorf(CodeParseError, "Parse error: the message is not valid JSON")}}, false
	}
	i := skipSpace(data, 0)
	switch data[i] {
	case '{':
		// One allocation for the item and its message.
		one := new(struct {
			items [1]Item
			msg   Message
		})
		one.items[0] = decodeMember(data[i:skipValue(data, i)], &one.msg)
		return one.items[:], false
	case '[':
		members := splitArray(data, i)
		switch {
		case len(members) == 0:
			return []Item{{Err: invalid("an empty batch")}}, false
		case len(members) > MaxBatch:
			return []Item{{Err: invalid("a batch of %d members (at most %d)", len(members), MaxBatch)}}, false
		}
		items = make([]Item, len(members))
		msgs := make([]Message, len(members))
		for k, m := range members {
			items[k] = decodeMember(m, &msgs[k])
		}
		return items, true
	default:
		return []Item{{Err: invalid("a message must be an object or an array")}}, false
	}
}

func invalid(format string, args ...any) *Error {
	return Errorf(CodeInvalidRequest, "Invalid Request: "+format, args...)
}

// decodeMember decodes one member, which is valid JSON, into m.
func decodeMember(b []byte, m *Message) Item {
	if b[0] != '{' {
		return Item{Err: invalid("a member must be an object")}
	}
	var (
		version, hasMethod bool
		methodRaw, idRaw   []byte
	)
	forEachMember(b, func(key, val []byte) {
		switch string(memberName(key)) {
		case "jsonrpc":
			version = isString(val, Version)
		case "id":
			idRaw = val
		case "method":
			hasMethod, methodRaw = true, val
		case "params":
			m.Params = val
		case "result":
			m.Result = val
		case "error":
			m.Error = val
		case "meta":
			m.Meta = val
		}
	})
	if idRaw != nil {
		if !validID(idRaw) {
			return Item{Err: invalid(`"id" must be a string, a number or null`)}
		}
		m.ID = idRaw
	}
	fail := func(format string, args ...any) Item { return Item{Err: invalid(format, args...), ID: m.ID} }
	switch {
	case !version:
		return fail(`"jsonrpc" must be "2.0"`)
	case m.Meta != nil && m.Meta[0] != '{':
		return fail(`"meta" must be an object`)
	}
	if hasMethod {
		name, ok := unquote(methodRaw)
		switch {
		case !ok:
			return fail(`"method" must be a string`)
		case name == "":
			return fail(`"method" must not be empty`)
		case m.Params != nil && m.Params[0] != '{' && m.Params[0] != '[':
			return fail(`"params" must be an object or an array`)
		case m.Result != nil || m.Error != nil:
			return fail(`a request must not have "result" or "error"`)
		}
		m.Method = name
		return Item{Msg: m}
	}
	switch {
	case m.ID == nil:
		return fail(`no "method" (a request) and no "id" (a response)`)
	case (m.Result == nil) == (m.Error == nil):
		return fail(`a response must have exactly one of "result" and "error"`)
	case m.Error != nil && !validErrorObject(m.Error):
		return fail(`"error" must be an object with an integer "code" and a string "message"`)
	}
	return Item{Msg: m}
}

func validID(b []byte) bool {
	switch c := b[0]; {
	case c == '"', c == '-', c >= '0' && c <= '9':
		return true
	default:
		return string(b) == "null"
	}
}

// validErrorObject reports whether b is an object whose "code" is an
// integer number (not a string holding one) and whose "message" is a string.
// Member names match exactly, as in the rest of the envelope.
func validErrorObject(b []byte) bool {
	if b[0] != '{' {
		return false
	}
	var code, message []byte
	forEachMember(b, func(key, val []byte) {
		switch string(memberName(key)) {
		case "code":
			code = val
		case "message":
			message = val
		}
	})
	if code == nil || message == nil || message[0] != '"' {
		return false
	}
	if c := code[0]; c != '-' && (c < '0' || c > '9') {
		return false
	}
	_, err := strconv.ParseInt(string(code), 10, 64)
	return err == nil
}

// memberName returns the decoded name of the raw (quoted) member key,
// aliasing key when it has no escapes (the usual case: no allocation).
func memberName(key []byte) []byte {
	if bytes.IndexByte(key, '\\') < 0 {
		return key[1 : len(key)-1]
	}
	s, _ := unquote(key)
	return []byte(s)
}

// isString reports whether the JSON value b is the string want.
func isString(b []byte, want string) bool {
	if len(b) == len(want)+2 && b[0] == '"' && string(b[1:len(b)-1]) == want {
		return true
	}
	s, ok := unquote(b)
	return ok && s == want
}

// unquote decodes the JSON string b as encoding/json does (invalid UTF-8
// becomes U+FFFD); ok is false when b is not a string.
func unquote(b []byte) (s string, ok bool) {
	if len(b) < 2 || b[0] != '"' {
		return "", false
	}
	if bytes.IndexByte(b, '\\') < 0 && utf8.Valid(b) {
		return string(b[1 : len(b)-1]), true
	}
	return unquoteEscaped(b)
}

// unquoteEscaped is unquote's slow path, a function of its own so that
// the fast path allocates nothing but its result.
func unquoteEscaped(b []byte) (s string, ok bool) {
	return s, json.Unmarshal(b, &s) == nil
}

// The scanner below walks JSON that json.Valid has accepted, so it checks
// nothing but finds value boundaries.

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipValue returns the index just after the value that starts at b[i].
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		for i++; ; i++ {
			switch b[i] {
			case '\\':
				i++
			case '"':
				return i + 1
			}
		}
	case '{', '[':
		depth := 0
		for ; ; i++ {
			switch b[i] {
			case '"':
				i = skipValue(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
	default:
		for i < len(b) {
			switch b[i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return i
			}
			i++
		}
		return i
	}
}

// forEachMember calls fn with the raw key (quotes included) and raw value of
// each member of the object at b.
func forEachMember(b []byte, fn func(key, val []byte)) {
	i := skipSpace(b, 1)
	for b[i] != '}' {
		kEnd := skipValue(b, i)
		key := b[i:kEnd]
		v := skipSpace(b, skipSpace(b, kEnd)+1) // past ':'
		vEnd := skipValue(b, v)
		fn(key, b[v:vEnd])
		i = skipSpace(b, vEnd)
		if b[i] == ',' {
			i = skipSpace(b, i+1)
		}
	}
}

// splitArray returns the raw members of the array at b[i].
func splitArray(b []byte, i int) [][]byte {
	var members [][]byte
	i = skipSpace(b, i+1)
	for b[i] != ']' {
		end := skipValue(b, i)
		members = append(members, b[i:end])
		i = skipSpace(b, end)
		if b[i] == ',' {
			i = skipSpace(b, i+1)
		}
	}
	return members
}

// HasMember reports whether data, one JSON value, is an object with a
// member called name (any value): "jsonrpc" tells JSON-RPC 2.0 from
// another dialect. It does not recurse, so it needs little stack.
func HasMember(data []byte, name string) bool {
	if !json.Valid(data) {
		return false
	}
	i := skipSpace(data, 0)
	if data[i] != '{' {
		return false
	}
	found := false
	forEachMember(data[i:skipValue(data, i)], func(key, _ []byte) {
		found = found || string(memberName(key)) == name
	})
	return found
}
