package rpc

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// The Append functions build outgoing frames by appending to dst, copying
// ids, params, results and meta as the raw bytes they are. A nil id is
// written as null in responses and omitted in requests (a notification).

// AppendRequest appends a request (or, with a nil id, a notification).
func AppendRequest(dst []byte, id json.RawMessage, method string, params, meta json.RawMessage) []byte {
	dst = append(dst, `{"jsonrpc":"2.0"`...)
	if id != nil {
		dst = append(dst, `,"id":`...)
		dst = append(dst, id...)
	}
	dst = append(dst, `,"method":`...)
	dst = AppendString(dst, method)
	dst = appendMember(dst, "params", params)
	dst = appendMember(dst, "meta", meta)
	return append(dst, '}')
}

// RequestSize is the length of the request AppendRequest appends when
// method needs no escapes: a capacity to allocate once.
func RequestSize(id json.RawMessage, method string, params, meta json.RawMessage) int {
	return len(`{"jsonrpc":"2.0","id":,"method":"","params":,"meta":}`) + len(id) + len(method) + len(params) + len(meta)
}

// ResponseSize is the length of the response AppendResult or
// AppendRawError appends with result (or the error object): a capacity to
// allocate once.
func ResponseSize(id, result, meta json.RawMessage) int {
	return len(`{"jsonrpc":"2.0","id":null,"result":,"meta":}`) + len(id) + len(result) + len(meta)
}

// AppendResult appends a successful response. A nil result is written as
// null: a response must carry "result" or "error".
func AppendResult(dst []byte, id, result, meta json.RawMessage) []byte {
	if result == nil {
		result = json.RawMessage("null")
	}
	dst = appendResponseStart(dst, id)
	dst = appendMember(dst, "result", result)
	dst = appendMember(dst, "meta", meta)
	return append(dst, '}')
}

// AppendRawError appends an error response whose error object is errObj,
// copied as is (a callee's error forwarded to its caller).
func AppendRawError(dst []byte, id, errObj, meta json.RawMessage) []byte {
	dst = appendResponseStart(dst, id)
	dst = appendMember(dst, "error", errObj)
	dst = appendMember(dst, "meta", meta)
	return append(dst, '}')
}

// AppendError appends an error response carrying e.
func AppendError(dst []byte, id json.RawMessage, e *Error) []byte {
	return AppendRawError(dst, id, e.JSON(), nil)
}

// JSON returns e encoded as a JSON-RPC error object.
func (e *Error) JSON() json.RawMessage {
	b := append([]byte(`{"code":`), strconv.FormatInt(e.Code, 10)...)
	b = append(b, `,"message":`...)
	b = AppendString(b, e.Message)
	b = appendMember(b, "data", e.Data)
	return append(b, '}')
}

// AppendBatch appends the frames as one JSON array.
func AppendBatch(dst []byte, frames [][]byte) []byte {
	dst = append(dst, '[')
	for i, f := range frames {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, f...)
	}
	return append(dst, ']')
}

// AppendString appends s as a JSON string.
func AppendString(dst []byte, s string) []byte {
	if !utf8.ValidString(s) {
		b, _ := json.Marshal(s) // replaces invalid bytes with U+FFFD
		return append(dst, b...)
	}
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c == '\n':
			dst = append(dst, '\\', 'n')
		case c == '\r':
			dst = append(dst, '\\', 'r')
		case c == '\t':
			dst = append(dst, '\\', 't')
		case c < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}

func appendResponseStart(dst []byte, id json.RawMessage) []byte {
	dst = append(dst, `{"jsonrpc":"2.0","id":`...)
	if id == nil {
		return append(dst, "null"...)
	}
	return append(dst, id...)
}

// appendMember appends ,"name":raw when raw is not nil.
func appendMember(dst []byte, name string, raw json.RawMessage) []byte {
	if raw == nil {
		return dst
	}
	dst = append(dst, ',', '"')
	dst = append(dst, name...)
	dst = append(dst, '"', ':')
	return append(dst, raw...)
}
