package rpc_test

import (
	"bytes"
	"encoding/json"
	"testing"
	"unsafe"

	"github.com/dccbridge/dccbridge/rpc"
)

// More seeds live in testdata/fuzz/FuzzDecode.
var fuzzSeeds = []string{
	`{"jsonrpc": "2.0", "method": "subtract", "params": [42, 23], "id": 1}`,
	`{"jsonrpc": "2.0", "method": "subtract", "params": {"subtrahend": 23, "minuend": 42}, "id": 3}`,
	`{"jsonrpc": "2.0", "method": "update", "params": [1,2,3,4,5]}`,
	`{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]`,
	`{"jsonrpc": "2.0", "method": 1, "params": "bar"}`,
	`[]`,
	`[1,2,3]`,
	`{"jsonrpc":"2.0","id":null,"method":"m"}`,
	`{"jsonrpc":"2.0","id":-12345678901234567890123,"result":null,"meta":{}}`,
	`{"jsonrpc":"2.0","id":"a\"]}","error":{"code":-32000,"message":"x","data":[1]}}`,
	`{"\u006asonrpc":"2.0","\u006dethod":"a\u002eb","id":1e3}`,
	"[{\"jsonrpc\":\"2.0\",\"method\":\"\xff\"},{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"params\":[\"]\"]}]",
	"\t\n 1 ",
}

func FuzzDecode(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		orig := bytes.Clone(data)
		items, batch := rpc.Decode(data)
		if !bytes.Equal(data, orig) {
			t.Fatalf("Decode modified its input")
		}
		if len(items) == 0 {
			t.Fatalf("Decode gave no items")
		}
		valid := json.Valid(data)
		if !valid {
			if len(items) != 1 || batch || items[0].Err == nil || items[0].Err.Code != rpc.CodeParseError || items[0].ID != nil {
				t.Fatalf("invalid JSON: got batch %v, %+v; want one -32700 with no id", batch, items)
			}
		}
		if !batch && len(items) != 1 {
			t.Fatalf("not a batch but %d items", len(items))
		}
		if len(items) > rpc.MaxBatch {
			t.Fatalf("%d items", len(items))
		}

		frames := make([][]byte, 0, len(items))
		for _, it := range items {
			if (it.Msg == nil) == (it.Err == nil) {
				t.Fatalf("item holds both or neither of Msg and Err: %+v", it)
			}
			if it.Err != nil {
				if valid && it.Err.Code != rpc.CodeInvalidRequest {
					t.Fatalf("valid JSON gave error %d", it.Err.Code)
				}
				if it.ID != nil {
					checkPart(t, "error id", it.ID, data)
					checkID(t, it.ID)
				}
				reply := rpc.AppendError(nil, it.ID, it.Err)
				checkReply(t, reply, it.ID)
				frames = append(frames, reply)
				continue
			}
			m := it.Msg
			if m.ID != nil {
				checkPart(t, "id", m.ID, data)
				checkID(t, m.ID)
			}
			for _, p := range []struct {
				name string
				b    json.RawMessage
			}{{"params", m.Params}, {"result", m.Result}, {"error", m.Error}, {"meta", m.Meta}} {
				if p.b != nil {
					checkPart(t, p.name, p.b, data)
				}
			}
			if m.Meta != nil && m.Meta[0] != '{' {
				t.Fatalf("meta %s is not an object", m.Meta)
			}
			if m.IsRequest() {
				if m.Result != nil || m.Error != nil {
					t.Fatalf("request %q with result or error", m.Method)
				}
				if m.Params != nil && m.Params[0] != '{' && m.Params[0] != '[' {
					t.Fatalf("params %s", m.Params)
				}
				reqRoundTrip(t, m)
				if m.ID != nil {
					frames = append(frames, rpc.AppendResult(nil, m.ID, json.RawMessage(`{}`), nil))
				}
				continue
			}
			if m.ID == nil || (m.Result == nil) == (m.Error == nil) {
				t.Fatalf("response with id %s, result %s, error %s", m.ID, m.Result, m.Error)
			}
			// A response is forwarded as is: re-encoding keeps it valid.
			var fwd []byte
			if m.Result != nil {
				fwd = rpc.AppendResult(nil, m.ID, m.Result, m.Meta)
			} else {
				fwd = rpc.AppendRawError(nil, m.ID, m.Error, m.Meta)
			}
			again, _ := rpc.Decode(fwd)
			if len(again) != 1 || again[0].Msg == nil || !again[0].Msg.IsResponse() ||
				!bytes.Equal(again[0].Msg.ID, m.ID) || !bytes.Equal(again[0].Msg.Result, m.Result) || !bytes.Equal(again[0].Msg.Error, m.Error) {
				t.Fatalf("response %s re-encoded as %s decodes as %+v", data, fwd, again)
			}
		}
		if b := rpc.AppendBatch(nil, frames); !json.Valid(b) {
			t.Fatalf("batch reply %s is not valid JSON", b)
		}
	})
}

// checkPart fails unless b is valid JSON and lies inside data (Decode keeps
// raw members as sub-slices of its input, never copies).
func checkPart(t *testing.T, name string, b, data []byte) {
	t.Helper()
	if !json.Valid(b) {
		t.Fatalf("%s %q is not valid JSON", name, b)
	}
	if len(b) == 0 || len(data) == 0 {
		t.Fatalf("%s is empty", name)
	}
	lo := uintptr(unsafe.Pointer(unsafe.SliceData(data)))
	p := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	if p < lo || p+uintptr(len(b)) > lo+uintptr(len(data)) {
		t.Fatalf("%s %q is not a sub-slice of the input", name, b)
	}
}

func checkID(t *testing.T, id []byte) {
	t.Helper()
	switch c := id[0]; {
	case c == '"', c == '-', c >= '0' && c <= '9', string(id) == "null":
	default:
		t.Fatalf("id %s is not a string, number or null", id)
	}
}

// checkReply fails unless reply is a valid error response carrying id (null
// when id is nil).
func checkReply(t *testing.T, reply, id []byte) {
	t.Helper()
	if !json.Valid(reply) {
		t.Fatalf("error reply %s is not valid JSON", reply)
	}
	items, batch := rpc.Decode(reply)
	if batch || len(items) != 1 || items[0].Msg == nil || items[0].Msg.Error == nil {
		t.Fatalf("error reply %s decodes as %+v", reply, items)
	}
	want := "null"
	if id != nil {
		want = string(id)
	}
	if string(items[0].Msg.ID) != want {
		t.Fatalf("error reply %s carries id %s, want %s", reply, items[0].Msg.ID, want)
	}
}

// reqRoundTrip re-encodes a request as the router forwards it and decodes
// it again.
func reqRoundTrip(t *testing.T, m *rpc.Message) {
	t.Helper()
	b := rpc.AppendRequest(nil, m.ID, m.Method, m.Params, m.Meta)
	if !json.Valid(b) {
		t.Fatalf("AppendRequest gave invalid JSON %s", b)
	}
	items, batch := rpc.Decode(b)
	if batch || len(items) != 1 || items[0].Msg == nil {
		t.Fatalf("re-encoded request %s decodes as %+v", b, items)
	}
	g := items[0].Msg
	if g.Method != m.Method || !bytes.Equal(g.ID, m.ID) || !bytes.Equal(g.Params, m.Params) || !bytes.Equal(g.Meta, m.Meta) ||
		g.IsNotification() != m.IsNotification() {
		t.Fatalf("re-encoded request %s decodes as %+v, want %+v", b, *g, *m)
	}
}
