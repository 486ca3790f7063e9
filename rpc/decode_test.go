package rpc_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/dccbridge/dccbridge/rpc"
)

// want describes one decoded item. code 0 means a valid message; otherwise
// the item is an error with that code, and id is what Item.ID must hold
// ("" = nil, so the reply carries id null).
type want struct {
	code int64

	kind   string // "request", "notification" or "response" when code is 0
	id     string // exact bytes of the id; "" = absent
	method string
	params string // exact bytes; "" = absent
	result string
	error  string
	meta   string
}

func request(id, method, params string) want {
	return want{kind: "request", id: id, method: method, params: params}
}

func notification(method, params string) want {
	return want{kind: "notification", method: method, params: params}
}

func result(id, res string) want { return want{kind: "response", id: id, result: res} }

func errorResponse(id, obj string) want { return want{kind: "response", id: id, error: obj} }

func invalidReq(id string) want { return want{code: rpc.CodeInvalidRequest, id: id} }

var parseError = want{code: rpc.CodeParseError}

// raw reports b as the test writes it: "" for nil.
func raw(b json.RawMessage) string {
	if b == nil {
		return ""
	}
	return string(b)
}

func checkItem(t *testing.T, label string, it rpc.Item, w want) {
	t.Helper()
	if (it.Msg == nil) == (it.Err == nil) {
		t.Fatalf("%s: item must hold exactly one of Msg and Err, got %+v", label, it)
	}
	if w.code != 0 {
		if it.Err == nil {
			t.Fatalf("%s: decoded as a valid message %+v, want error %d", label, *it.Msg, w.code)
		}
		if it.Err.Code != w.code {
			t.Errorf("%s: error code %d (%s), want %d", label, it.Err.Code, it.Err.Message, w.code)
		}
		if raw(it.ID) != w.id {
			t.Errorf("%s: error item id %q, want %q", label, raw(it.ID), w.id)
		}
		checkErrorReply(t, label, it, w)
		return
	}
	if it.Err != nil {
		t.Fatalf("%s: got error %d %q, want a valid %s", label, it.Err.Code, it.Err.Message, w.kind)
	}
	m := it.Msg
	kind := "response"
	switch {
	case m.IsNotification():
		kind = "notification"
	case m.IsRequest():
		kind = "request"
	}
	if kind != w.kind {
		t.Errorf("%s: decoded as a %s, want a %s", label, kind, w.kind)
	}
	if m.IsResponse() == m.IsRequest() {
		t.Errorf("%s: IsRequest %v and IsResponse %v", label, m.IsRequest(), m.IsResponse())
	}
	for _, f := range []struct{ name, got, want string }{
		{"id", raw(m.ID), w.id},
		{"method", m.Method, w.method},
		{"params", raw(m.Params), w.params},
		{"result", raw(m.Result), w.result},
		{"error", raw(m.Error), w.error},
		{"meta", raw(m.Meta), w.meta},
	} {
		if f.got != f.want {
			t.Errorf("%s: %s = %q, want %q", label, f.name, f.got, f.want)
		}
	}
	if kind == "request" {
		// The reply echoes the id byte for byte.
		reply := rpc.AppendResult(nil, m.ID, json.RawMessage(`true`), nil)
		if !json.Valid(reply) {
			t.Fatalf("%s: reply %s is not valid JSON", label, reply)
		}
		if !strings.Contains(string(reply), `"id":`+w.id+`,`) {
			t.Errorf("%s: reply %s does not echo id %s exactly", label, reply, w.id)
		}
	}
}

// checkErrorReply encodes the reply a sender of an invalid item gets, as a
// client would read it.
func checkErrorReply(t *testing.T, label string, it rpc.Item, w want) {
	t.Helper()
	reply := rpc.AppendError(nil, it.ID, it.Err)
	var r struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Result  json.RawMessage `json:"result"`
		Error   *struct {
			Code    *int64  `json:"code"`
			Message *string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(reply, &r); err != nil {
		t.Fatalf("%s: error reply %s: %v", label, reply, err)
	}
	wantID := w.id
	if wantID == "" {
		wantID = "null"
	}
	switch {
	case r.JSONRPC != "2.0":
		t.Errorf("%s: reply %s: jsonrpc %q", label, reply, r.JSONRPC)
	case string(r.ID) != wantID:
		t.Errorf("%s: reply %s: id %s, want %s", label, reply, r.ID, wantID)
	case r.Result != nil || r.Error == nil || r.Error.Code == nil || r.Error.Message == nil:
		t.Errorf("%s: reply %s is not an error response", label, reply)
	case *r.Error.Code != w.code:
		t.Errorf("%s: reply %s: code %d, want %d", label, reply, *r.Error.Code, w.code)
	}
}

func decodeOne(t *testing.T, in string, w want) {
	t.Helper()
	items, batch := rpc.Decode([]byte(in))
	if batch {
		t.Fatalf("Decode(%s): batch = true, want false", in)
	}
	if len(items) != 1 {
		t.Fatalf("Decode(%s): %d items, want 1", in, len(items))
	}
	checkItem(t, in, items[0], w)
}

func decodeBatch(t *testing.T, in string, ws []want) {
	t.Helper()
	items, batch := rpc.Decode([]byte(in))
	if !batch {
		t.Fatalf("Decode(%s): batch = false, want true", in)
	}
	if len(items) != len(ws) {
		t.Fatalf("Decode(%s): %d items, want %d", in, len(items), len(ws))
	}
	for i, it := range items {
		checkItem(t, fmt.Sprintf("%s [%d]", in, i), it, ws[i])
	}
}

// The examples of section 7 of the JSON-RPC 2.0 specification, literally.
func TestDecodeSpecExamples(t *testing.T) {
	single := []struct {
		name string
		in   string
		want want
	}{
		{"positional params", `{"jsonrpc": "2.0", "method": "subtract", "params": [42, 23], "id": 1}`,
			request("1", "subtract", "[42, 23]")},
		{"positional params reply", `{"jsonrpc": "2.0", "result": 19, "id": 1}`, result("1", "19")},
		{"positional params 2", `{"jsonrpc": "2.0", "method": "subtract", "params": [23, 42], "id": 2}`,
			request("2", "subtract", "[23, 42]")},
		{"positional params 2 reply", `{"jsonrpc": "2.0", "result": -19, "id": 2}`, result("2", "-19")},
		{"named params", `{"jsonrpc": "2.0", "method": "subtract", "params": {"subtrahend": 23, "minuend": 42}, "id": 3}`,
			request("3", "subtract", `{"subtrahend": 23, "minuend": 42}`)},
		{"named params reply", `{"jsonrpc": "2.0", "result": 19, "id": 3}`, result("3", "19")},
		{"named params 2", `{"jsonrpc": "2.0", "method": "subtract", "params": {"minuend": 42, "subtrahend": 23}, "id": 4}`,
			request("4", "subtract", `{"minuend": 42, "subtrahend": 23}`)},
		{"notification", `{"jsonrpc": "2.0", "method": "update", "params": [1,2,3,4,5]}`,
			notification("update", "[1,2,3,4,5]")},
		{"notification without params", `{"jsonrpc": "2.0", "method": "foobar"}`, notification("foobar", "")},
		{"non-existent method", `{"jsonrpc": "2.0", "method": "foobar", "id": "1"}`, request(`"1"`, "foobar", "")},
		{"non-existent method reply", `{"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found"}, "id": "1"}`,
			errorResponse(`"1"`, `{"code": -32601, "message": "Method not found"}`)},
		{"invalid JSON", `{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]`, parseError},
		{"invalid JSON reply", `{"jsonrpc": "2.0", "error": {"code": -32700, "message": "Parse error"}, "id": null}`,
			errorResponse("null", `{"code": -32700, "message": "Parse error"}`)},
		{"invalid Request object", `{"jsonrpc": "2.0", "method": 1, "params": "bar"}`, invalidReq("")},
		{"batch, invalid JSON", `[
  {"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},
  {"jsonrpc": "2.0", "method"
]`, parseError},
		{"empty array", `[]`, invalidReq("")},
	}
	for _, c := range single {
		t.Run(c.name, func(t *testing.T) { decodeOne(t, c.in, c.want) })
	}

	batches := []struct {
		name string
		in   string
		want []want
	}{
		{"non-empty invalid batch", `[1]`, []want{invalidReq("")}},
		{"invalid batch", `[1,2,3]`, []want{invalidReq(""), invalidReq(""), invalidReq("")}},
		{"mixed batch", `[
        {"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},
        {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]},
        {"jsonrpc": "2.0", "method": "subtract", "params": [42,23], "id": "2"},
        {"foo": "boo"},
        {"jsonrpc": "2.0", "method": "foo.get", "params": {"name": "myself"}, "id": "5"},
        {"jsonrpc": "2.0", "method": "get_data", "id": "9"} 
    ]`, []want{
			request(`"1"`, "sum", "[1,2,4]"),
			notification("notify_hello", "[7]"),
			request(`"2"`, "subtract", "[42,23]"),
			invalidReq(""),
			request(`"5"`, "foo.get", `{"name": "myself"}`),
			request(`"9"`, "get_data", ""),
		}},
		{"mixed batch reply", `[
        {"jsonrpc": "2.0", "result": 7, "id": "1"},
        {"jsonrpc": "2.0", "result": 19, "id": "2"},
        {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": null},
        {"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found"}, "id": "5"},
        {"jsonrpc": "2.0", "result": ["hello", 5], "id": "9"}
    ]`, []want{
			result(`"1"`, "7"),
			result(`"2"`, "19"),
			errorResponse("null", `{"code": -32600, "message": "Invalid Request"}`),
			errorResponse(`"5"`, `{"code": -32601, "message": "Method not found"}`),
			result(`"9"`, `["hello", 5]`),
		}},
		{"all notifications", `[
        {"jsonrpc": "2.0", "method": "notify_sum", "params": [1,2,4]},
        {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]}
    ]`, []want{notification("notify_sum", "[1,2,4]"), notification("notify_hello", "[7]")}},
	}
	for _, c := range batches {
		t.Run(c.name, func(t *testing.T) { decodeBatch(t, c.in, c.want) })
	}
}

// docs/protocol.md (Conformance): ids come back exactly as they were sent.
func TestDecodeIDs(t *testing.T) {
	ids := []string{
		`1`, `0`, `-1`, `-0`, `12345678901234567890123`, `-12345678901234567890`,
		`18446744073709551616`, `1e3`, `1E+3`, `-2.5e-7`, `1.0`,
		`"a"`, `""`, `"1"`, `"t-9"`,
		`"with \"escapes\" \\ \/ \b\f\n\r\t \u00e9 \ud83d\ude00 \u0000"`,
		`"]}{[,:"`, `"é😀"`,
		`null`,
	}
	for _, id := range ids {
		in := `{"jsonrpc":"2.0","id":` + id + `,"method":"m","params":[]}`
		decodeOne(t, in, request(id, "m", "[]"))
		// The same id on a response, and on an invalid request (the error
		// reply must still carry it).
		decodeOne(t, `{"jsonrpc":"2.0","result":{},"id":`+id+`}`, result(id, "{}"))
		decodeOne(t, `{"jsonrpc":"1.0","id":`+id+`,"method":"m"}`, invalidReq(id))
	}

	t.Run("null id is a request", func(t *testing.T) {
		items, _ := rpc.Decode([]byte(`{"jsonrpc":"2.0","method":"m","id":null}`))
		m := items[0].Msg
		if m == nil || m.IsNotification() || !m.IsRequest() || string(m.ID) != "null" {
			t.Fatalf("got %+v, want a request with id null", items[0])
		}
		if got := string(rpc.AppendResult(nil, m.ID, json.RawMessage(`1`), nil)); got != `{"jsonrpc":"2.0","id":null,"result":1}` {
			t.Errorf("reply %s", got)
		}
	})
	t.Run("missing id is a notification", func(t *testing.T) {
		decodeOne(t, `{"jsonrpc":"2.0","method":"m","params":{}}`, notification("m", "{}"))
	})
	t.Run("whitespace around the id is not part of it", func(t *testing.T) {
		decodeOne(t, "{\"jsonrpc\":\"2.0\",\"id\" : \t 7 \n,\"method\":\"m\"}", request("7", "m", ""))
		decodeOne(t, "{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"id\"\r\n:\"x\"\r\n}", request(`"x"`, "m", ""))
	})

	// An id that is not a string, number or null cannot be echoed: the
	// reply carries null.
	for _, id := range []string{`true`, `false`, `{}`, `[]`, `[1]`, `{"id":1}`} {
		decodeOne(t, `{"jsonrpc":"2.0","method":"m","id":`+id+`}`, invalidReq(""))
		decodeOne(t, `{"jsonrpc":"2.0","result":1,"id":`+id+`}`, invalidReq(""))
	}
}

func TestDecodeInvalidMembers(t *testing.T) {
	cases := []struct {
		name string
		in   string
		want want
	}{
		// "jsonrpc"
		{"missing jsonrpc", `{"method":"m","id":7}`, invalidReq("7")},
		{"missing jsonrpc, notification", `{"method":"m"}`, invalidReq("")},
		{"jsonrpc 1.0", `{"jsonrpc":"1.0","method":"m","id":"a"}`, invalidReq(`"a"`)},
		{"jsonrpc number", `{"jsonrpc":2.0,"method":"m","id":1}`, invalidReq("1")},
		{"jsonrpc null", `{"jsonrpc":null,"method":"m","id":1}`, invalidReq("1")},
		{"jsonrpc 2", `{"jsonrpc":"2","method":"m","id":1}`, invalidReq("1")},
		{"jsonrpc with space", `{"jsonrpc":"2.0 ","method":"m","id":1}`, invalidReq("1")},
		{"jsonrpc wrong case key", `{"JSONRPC":"2.0","method":"m","id":1}`, invalidReq("1")},
		{"jsonrpc escaped value", `{"jsonrpc":"\u0032.0","method":"m","id":1}`, request("1", "m", "")},

		// "method"
		{"method number", `{"jsonrpc":"2.0","method":1,"id":1}`, invalidReq("1")},
		{"method null", `{"jsonrpc":"2.0","method":null,"id":1}`, invalidReq("1")},
		{"method true", `{"jsonrpc":"2.0","method":true,"id":1}`, invalidReq("1")},
		{"method array", `{"jsonrpc":"2.0","method":["m"],"id":1}`, invalidReq("1")},
		{"method object", `{"jsonrpc":"2.0","method":{"m":1},"id":1}`, invalidReq("1")},
		{"method empty", `{"jsonrpc":"2.0","method":"","id":1}`, invalidReq("1")},
		{"method empty notification", `{"jsonrpc":"2.0","method":""}`, invalidReq("")},
		{"method escaped", `{"jsonrpc":"2.0","method":"app\u002eget_items","id":1}`, request("1", "app.get_items", "")},
		{"method with quotes", `{"jsonrpc":"2.0","method":"a\"b\\c","id":1}`, request("1", `a"b\c`, "")},
		{"method wrong case key", `{"jsonrpc":"2.0","Method":"m","id":1}`, invalidReq("1")},

		// "params"
		{"params number", `{"jsonrpc":"2.0","method":"m","params":1,"id":1}`, invalidReq("1")},
		{"params string", `{"jsonrpc":"2.0","method":"m","params":"bar","id":"x"}`, invalidReq(`"x"`)},
		{"params true", `{"jsonrpc":"2.0","method":"m","params":true,"id":1}`, invalidReq("1")},
		{"params null", `{"jsonrpc":"2.0","method":"m","params":null,"id":1}`, invalidReq("1")},
		{"params scalar notification", `{"jsonrpc":"2.0","method":"m","params":5}`, invalidReq("")},
		{"params empty array", `{"jsonrpc":"2.0","method":"m","params":[],"id":1}`, request("1", "m", "[]")},
		{"params empty object", `{"jsonrpc":"2.0","method":"m","params":{},"id":1}`, request("1", "m", "{}")},

		// requests carrying response members
		{"request with result", `{"jsonrpc":"2.0","method":"m","id":1,"result":1}`, invalidReq("1")},
		{"request with null result", `{"jsonrpc":"2.0","method":"m","id":1,"result":null}`, invalidReq("1")},
		{"request with error", `{"jsonrpc":"2.0","method":"m","id":1,"error":{"code":1,"message":"x"}}`, invalidReq("1")},
		{"notification with result", `{"jsonrpc":"2.0","method":"m","result":1}`, invalidReq("")},

		// responses
		{"response with both", `{"jsonrpc":"2.0","id":1,"result":1,"error":{"code":1,"message":"x"}}`, invalidReq("1")},
		{"response with neither", `{"jsonrpc":"2.0","id":1}`, invalidReq("1")},
		{"response with null result", `{"jsonrpc":"2.0","id":1,"result":null}`, result("1", "null")},
		{"response without id", `{"jsonrpc":"2.0","result":1}`, invalidReq("")},
		{"error without id", `{"jsonrpc":"2.0","error":{"code":1,"message":"x"}}`, invalidReq("")},
		{"empty object", `{}`, invalidReq("")},
		{"response with meta", `{"jsonrpc":"2.0","id":"c-1","result":[1],"meta":{"app":"ae","instance":"i"}}`,
			want{kind: "response", id: `"c-1"`, result: "[1]", meta: `{"app":"ae","instance":"i"}`}},

		// error objects
		{"error with data", `{"jsonrpc":"2.0","id":1,"error":{"code":-32004,"message":"gone","data":{"may_have_run":true}}}`,
			errorResponse("1", `{"code":-32004,"message":"gone","data":{"may_have_run":true}}`)},
		{"error code -0", `{"jsonrpc":"2.0","id":1,"error":{"message":"x","code":-0}}`,
			errorResponse("1", `{"message":"x","code":-0}`)},
		{"error escaped keys", `{"jsonrpc":"2.0","id":1,"error":{"\u0063ode":5,"m\u0065ssage":"x"}}`,
			errorResponse("1", `{"\u0063ode":5,"m\u0065ssage":"x"}`)},
		{"error without code", `{"jsonrpc":"2.0","id":1,"error":{"message":"x"}}`, invalidReq("1")},
		{"error code string", `{"jsonrpc":"2.0","id":1,"error":{"code":"-32000","message":"x"}}`, invalidReq("1")},
		{"error code null", `{"jsonrpc":"2.0","id":1,"error":{"code":null,"message":"x"}}`, invalidReq("1")},
		{"error code fraction", `{"jsonrpc":"2.0","id":1,"error":{"code":1.5,"message":"x"}}`, invalidReq("1")},
		{"error code exponent", `{"jsonrpc":"2.0","id":1,"error":{"code":1e3,"message":"x"}}`, invalidReq("1")},
		{"error code too big", `{"jsonrpc":"2.0","id":1,"error":{"code":99999999999999999999,"message":"x"}}`, invalidReq("1")},
		{"error code wrong case", `{"jsonrpc":"2.0","id":1,"error":{"Code":1,"message":"x"}}`, invalidReq("1")},
		{"error message wrong case", `{"jsonrpc":"2.0","id":1,"error":{"code":1,"MESSAGE":"x"}}`, invalidReq("1")},
		{"error without message", `{"jsonrpc":"2.0","id":1,"error":{"code":1}}`, invalidReq("1")},
		{"error message number", `{"jsonrpc":"2.0","id":1,"error":{"code":1,"message":2}}`, invalidReq("1")},
		{"error message null", `{"jsonrpc":"2.0","id":1,"error":{"code":1,"message":null}}`, invalidReq("1")},
		{"error string", `{"jsonrpc":"2.0","id":1,"error":"boom"}`, invalidReq("1")},
		{"error array", `{"jsonrpc":"2.0","id":1,"error":[1]}`, invalidReq("1")},
		{"error null", `{"jsonrpc":"2.0","id":1,"error":null}`, invalidReq("1")},
		{"error code in data only", `{"jsonrpc":"2.0","id":1,"error":{"data":{"code":1},"message":"x"}}`, invalidReq("1")},

		// "meta"
		{"meta object", `{"jsonrpc":"2.0","id":"t-9","method":"aftereffects.get_items","params":{"comps":true},"meta":{"target":"ae-7f3a","timeout_ms":600000}}`,
			want{kind: "request", id: `"t-9"`, method: "aftereffects.get_items", params: `{"comps":true}`, meta: `{"target":"ae-7f3a","timeout_ms":600000}`}},
		{"meta array", `{"jsonrpc":"2.0","method":"m","id":1,"meta":[]}`, invalidReq("1")},
		{"meta string", `{"jsonrpc":"2.0","method":"m","id":1,"meta":"x"}`, invalidReq("1")},
		{"meta null", `{"jsonrpc":"2.0","method":"m","id":1,"meta":null}`, invalidReq("1")},
		{"meta number on response", `{"jsonrpc":"2.0","result":1,"id":2,"meta":3}`, invalidReq("2")},

		// member names and structure
		{"escaped member names", `{"\u006asonrpc":"2.0","\u006dethod":"m","\u0069d":1,"p\u0061rams":[1],"\u006deta":{}}`,
			want{kind: "request", id: "1", method: "m", params: "[1]", meta: "{}"}},
		{"escaped result name", `{"jsonrpc":"2.0","\u0072esult":true,"id":1}`, result("1", "true")},
		{"unknown members ignored", `{"jsonrpc":"2.0","method":"m","id":1,"extra":{"method":1,"id":[]},"x":null}`,
			request("1", "m", "")},
		{"nested members do not leak", `{"jsonrpc":"2.0","params":{"method":"evil","id":9,"jsonrpc":"1.0"},"method":"m","id":1}`,
			request("1", "m", `{"method":"evil","id":9,"jsonrpc":"1.0"}`)},
		{"duplicate method, last wins", `{"jsonrpc":"2.0","method":"a","method":"b","id":1}`, request("1", "b", "")},
		{"duplicate id, last wins", `{"jsonrpc":"2.0","id":1,"id":"two","method":"m"}`, request(`"two"`, "m", "")},
		{"duplicate id, last invalid", `{"jsonrpc":"2.0","id":1,"id":{},"method":"m"}`, invalidReq("")},
		{"duplicate jsonrpc, last wrong", `{"jsonrpc":"2.0","jsonrpc":"1.0","method":"m","id":1}`, invalidReq("1")},
		{"duplicate jsonrpc, last right", `{"jsonrpc":"1.0","jsonrpc":"2.0","method":"m","id":1}`, request("1", "m", "")},
		{"duplicate params", `{"jsonrpc":"2.0","method":"m","params":1,"params":[2],"id":1}`, request("1", "m", "[2]")},
		{"brackets and quotes in strings",
			`{"jsonrpc":"2.0","method":"m]}","params":{"s":"]}\"[{","t":["\\",{"u":"\"}"}],"v":"\\\""},"id":"]\"}"}`,
			request(`"]\"}"`, "m]}", `{"s":"]}\"[{","t":["\\",{"u":"\"}"}],"v":"\\\""}`)},
		{"deep params", `{"jsonrpc":"2.0","method":"m","params":[[[[{"a":[{"b":"]]]"}]}]]]],"id":1}`,
			request("1", "m", `[[[[{"a":[{"b":"]]]"}]}]]]]`)},
		{"whitespace everywhere", " \r\n\t{ \"jsonrpc\" \t:\r\n\"2.0\" , \"id\" : 1 ,\n\"method\"\t: \"m\" , \"params\" : [ 1 , { \"a\" : 2 } ] , \"meta\" : { } }\n\t ",
			want{kind: "request", id: "1", method: "m", params: `[ 1 , { "a" : 2 } ]`, meta: "{ }"}},

		// top level
		{"number", `1`, invalidReq("")},
		{"negative number", ` -0.5 `, invalidReq("")},
		{"string", `"{\"jsonrpc\":\"2.0\",\"method\":\"m\"}"`, invalidReq("")},
		{"null", `null`, invalidReq("")},
		{"true", "\ttrue\n", invalidReq("")},
		{"false", `false`, invalidReq("")},
		{"empty array with space", " [ \n ] ", invalidReq("")},

		// not JSON
		{"empty input", ``, parseError},
		{"only whitespace", " \n\t ", parseError},
		{"two objects", `{"jsonrpc":"2.0","method":"m"}{"jsonrpc":"2.0","method":"m"}`, parseError},
		{"trailing garbage", `{"jsonrpc":"2.0","method":"m"} x`, parseError},
		{"trailing comma", `{"jsonrpc":"2.0","method":"m",}`, parseError},
		{"batch trailing comma", `[{"jsonrpc":"2.0","method":"m"},]`, parseError},
		{"single quotes", `{'jsonrpc':'2.0','method':'m'}`, parseError},
		{"unterminated string", `{"jsonrpc":"2.0","method":"m`, parseError},
		{"raw control char in string", "{\"jsonrpc\":\"2.0\",\"method\":\"a\nb\"}", parseError},
		{"bad escape", `{"jsonrpc":"2.0","method":"\x"}`, parseError},
		{"byte order mark", "\ufeff{\"jsonrpc\":\"2.0\",\"method\":\"m\"}", parseError},
		{"NaN id", `{"jsonrpc":"2.0","method":"m","id":NaN}`, parseError},
		{"leading zero id", `{"jsonrpc":"2.0","method":"m","id":01}`, parseError},
		{"too deep", strings.Repeat("[", 20000) + strings.Repeat("]", 20000), parseError},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { decodeOne(t, c.in, c.want) })
	}
}

func TestDecodeBatches(t *testing.T) {
	cases := []struct {
		name string
		in   string
		want []want
	}{
		{"one member", `[{"jsonrpc":"2.0","method":"m","id":1}]`, []want{request("1", "m", "")}},
		{"members keep their ids in errors",
			`[{"jsonrpc":"2.0","method":1,"id":"a"},{"jsonrpc":"2.0","method":"m","params":3,"id":-5},{"method":"m","id":null}]`,
			[]want{invalidReq(`"a"`), invalidReq("-5"), invalidReq("null")}},
		{"nested batch", `[[{"jsonrpc":"2.0","method":"m","id":1}]]`, []want{invalidReq("")}},
		{"nested empty batch", `[[]]`, []want{invalidReq("")}},
		{"scalars", `[null,"x",true,{}]`, []want{invalidReq(""), invalidReq(""), invalidReq(""), invalidReq("")}},
		{"brackets in strings",
			`[{"jsonrpc":"2.0","method":"a]","params":["],[","\"]"],"id":"[\""},{"jsonrpc":"2.0","method":"b,"}]`,
			[]want{request(`"[\""`, "a]", `["],[","\"]"]`), notification("b,", "")}},
		{"whitespace everywhere", " \n[ \t{\"jsonrpc\":\"2.0\",\"method\":\"a\"}\r\n, \n {\"jsonrpc\":\"2.0\",\"result\":0,\"id\":0} \t]\n",
			[]want{notification("a", ""), result("0", "0")}},
		{"responses and requests", `[{"jsonrpc":"2.0","result":1,"id":1},{"jsonrpc":"2.0","method":"m","id":1}]`,
			[]want{result("1", "1"), request("1", "m", "")}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { decodeBatch(t, c.in, c.want) })
	}
}

func batchOf(n int) string {
	var b strings.Builder
	b.WriteString("[")
	for i := range n {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"jsonrpc":"2.0","method":"m","id":%d}`, i)
	}
	b.WriteString("]")
	return b.String()
}

func TestDecodeBatchLimit(t *testing.T) {
	items, batch := rpc.Decode([]byte(batchOf(rpc.MaxBatch)))
	if !batch || len(items) != rpc.MaxBatch {
		t.Fatalf("batch of %d: batch %v, %d items", rpc.MaxBatch, batch, len(items))
	}
	for i, it := range items {
		if it.Msg == nil || string(it.Msg.ID) != strconv.Itoa(i) {
			t.Fatalf("member %d: %+v", i, it)
		}
	}

	decodeOne(t, batchOf(rpc.MaxBatch+1), invalidReq(""))
	decodeOne(t, batchOf(5000), invalidReq(""))
	// Invalid members count too.
	decodeOne(t, "["+strings.Repeat("1,", rpc.MaxBatch)+"1]", invalidReq(""))
	if items, batch := rpc.Decode([]byte("[" + strings.Repeat("1,", rpc.MaxBatch-1) + "1]")); !batch || len(items) != rpc.MaxBatch {
		t.Fatalf("batch of %d invalid members: batch %v, %d items", rpc.MaxBatch, batch, len(items))
	}
}

// A method name decodes as encoding/json decodes the same string, including
// invalid UTF-8, so that it re-encodes to itself.
func TestDecodeMethodLikeEncodingJSON(t *testing.T) {
	for _, lit := range []string{`"m"`, `"é"`, "\"a\xffb\"", "\"\xc3\"", "\"\xed\xa0\x80\"", `"\ud800"`, `"a\u0000b"`, "\"\xff\\n\""} {
		var want string
		if err := json.Unmarshal([]byte(lit), &want); err != nil {
			t.Fatal(err)
		}
		items, _ := rpc.Decode([]byte(`{"jsonrpc":"2.0","id":1,"method":` + lit + `}`))
		m := items[0].Msg
		if m == nil {
			t.Fatalf("method %q: %+v", lit, items[0])
		}
		if m.Method != want {
			t.Errorf("method %q: decoded %q, encoding/json gives %q", lit, m.Method, want)
		}
		again, _ := rpc.Decode(rpc.AppendRequest(nil, m.ID, m.Method, nil, nil))
		if again[0].Msg == nil || again[0].Msg.Method != m.Method {
			t.Errorf("method %q does not survive re-encoding: %+v", lit, again[0])
		}
	}
}

// Decode aliases its input and must not change it.
func TestDecodeDoesNotModifyInput(t *testing.T) {
	in := []byte(`[{"jsonrpc":"2.0","method":"a\u002eb","params":["\"x\""],"id":"\u0031"},{"\u006dethod":"m"}]`)
	orig := string(in)
	rpc.Decode(in)
	if string(in) != orig {
		t.Fatalf("input changed to %s", in)
	}
}

func TestAppendRequest(t *testing.T) {
	cases := []struct {
		id, method, params, meta string // "" = nil
		want                     string
		kind                     string
	}{
		{"1", "m", "[1,2]", "", `{"jsonrpc":"2.0","id":1,"method":"m","params":[1,2]}`, "request"},
		{"", "m", "", "", `{"jsonrpc":"2.0","method":"m"}`, "notification"},
		{"null", "m", "", "", `{"jsonrpc":"2.0","id":null,"method":"m"}`, "request"},
		{`"f-1"`, "get_items", `{"comps":true}`, `{"caller":{"app":"pipeline"},"attempt":1}`,
			`{"jsonrpc":"2.0","id":"f-1","method":"get_items","params":{"comps":true},"meta":{"caller":{"app":"pipeline"},"attempt":1}}`, "request"},
		{"-12345678901234567890", "a\"b\\c\n", "", "{}", `{"jsonrpc":"2.0","id":-12345678901234567890,"method":"a\"b\\c\n","meta":{}}`, "request"},
	}
	for _, c := range cases {
		nilIf := func(s string) json.RawMessage {
			if s == "" {
				return nil
			}
			return json.RawMessage(s)
		}
		got := rpc.AppendRequest([]byte("prefix"), nilIf(c.id), c.method, nilIf(c.params), nilIf(c.meta))
		if !strings.HasPrefix(string(got), "prefix") {
			t.Fatalf("AppendRequest dropped dst: %s", got)
		}
		got = got[len("prefix"):]
		if string(got) != c.want {
			t.Errorf("AppendRequest = %s, want %s", got, c.want)
		}
		if !json.Valid(got) {
			t.Errorf("AppendRequest = %s: not valid JSON", got)
		}
		w := want{kind: c.kind, id: c.id, method: c.method, params: c.params, meta: c.meta}
		decodeOne(t, string(got), w)
	}
}

func TestAppendResponses(t *testing.T) {
	cases := []struct {
		name string
		got  []byte
		want string
	}{
		{"result", rpc.AppendResult(nil, json.RawMessage(`"a"`), json.RawMessage(`{"x":[1]}`), nil),
			`{"jsonrpc":"2.0","id":"a","result":{"x":[1]}}`},
		{"result with meta", rpc.AppendResult(nil, json.RawMessage(`12345678901234567890123`), json.RawMessage(`null`), json.RawMessage(`{"app":"ae"}`)),
			`{"jsonrpc":"2.0","id":12345678901234567890123,"result":null,"meta":{"app":"ae"}}`},
		{"result nil id", rpc.AppendResult(nil, nil, json.RawMessage(`1`), nil),
			`{"jsonrpc":"2.0","id":null,"result":1}`},
		{"nil result is null", rpc.AppendResult(nil, json.RawMessage(`1`), nil, nil),
			`{"jsonrpc":"2.0","id":1,"result":null}`},
		{"raw error", rpc.AppendRawError(nil, json.RawMessage(`-3`), json.RawMessage(`{"code":7,"message":"host says no","data":[1]}`), json.RawMessage(`{"instance":"i"}`)),
			`{"jsonrpc":"2.0","id":-3,"error":{"code":7,"message":"host says no","data":[1]},"meta":{"instance":"i"}}`},
		{"error", rpc.AppendError(nil, nil, rpc.ErrParse),
			`{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}`},
		{"error with data", rpc.AppendError(nil, json.RawMessage(`"x"`), rpc.ErrCalleeGone.WithData(map[string]any{"app": "ae", "may_have_run": true})),
			`{"jsonrpc":"2.0","id":"x","error":{"code":-32004,"message":"the callee dropped and did not come back","data":{"app":"ae","may_have_run":true}}}`},
		{"error message escaped", rpc.AppendError(nil, json.RawMessage(`1`), rpc.Errorf(rpc.CodeInvalidParams, "bad \"%s\"\n\t\\ \x01 \xff", "p")),
			`{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"bad \"p\"\n\t\\ \u0001 \ufffd"}}`},
	}
	for _, c := range cases {
		if !json.Valid(c.got) {
			t.Errorf("%s: %s is not valid JSON", c.name, c.got)
		}
		if string(c.got) != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.name, c.got, c.want)
		}
		// Our own decoder accepts every reply as a response.
		items, _ := rpc.Decode(c.got)
		if items[0].Msg == nil || !items[0].Msg.IsResponse() {
			t.Errorf("%s: %s does not decode as a response: %+v", c.name, c.got, items[0])
		}
	}
}

func TestAppendBatch(t *testing.T) {
	if got := rpc.AppendBatch(nil, nil); string(got) != "[]" {
		t.Errorf("empty batch: %s", got)
	}
	frames := [][]byte{
		rpc.AppendResult(nil, json.RawMessage(`"1"`), json.RawMessage(`7`), nil),
		rpc.AppendError(nil, nil, rpc.ErrInvalidRequest),
		rpc.AppendRequest(nil, nil, "notify", json.RawMessage(`[1]`), nil),
	}
	got := rpc.AppendBatch([]byte("x"), frames)
	if string(got[:1]) != "x" {
		t.Fatalf("dst dropped: %s", got)
	}
	got = got[1:]
	if !json.Valid(got) {
		t.Fatalf("%s is not valid JSON", got)
	}
	decodeBatch(t, string(got), []want{result(`"1"`, "7"), errorResponse("null", `{"code":-32600,"message":"Invalid Request"}`), notification("notify", "[1]")})
}

func TestAppendString(t *testing.T) {
	var all strings.Builder
	for c := range 0x80 {
		all.WriteByte(byte(c))
	}
	strs := []string{
		"", "plain", `"`, `\`, `\"`, `"\"`, "\x00", "\x1f", "\x7f", "\n\r\t\b\f",
		all.String(), "é", "日本語", "😀", "\u2028\u2029", "<script>&</script>", "\ufffd", "\uffff",
		"\xff", "a\xffb", "\xc3", "\xc3(", "\xed\xa0\x80", "\xf0\x9f\x98", "\x80\x80", "😀\xff😀",
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 5000 {
		b := make([]byte, rng.IntN(24))
		for i := range b {
			switch rng.IntN(4) {
			case 0:
				b[i] = byte(rng.IntN(0x20))
			case 1:
				b[i] = `"\/`[rng.IntN(3)]
			case 2:
				b[i] = byte(0x80 + rng.IntN(0x80))
			default:
				b[i] = byte(rng.IntN(0x100))
			}
		}
		strs = append(strs, string(b))
	}
	for _, s := range strs {
		enc := rpc.AppendString([]byte("p"), s)
		if enc[0] != 'p' {
			t.Fatalf("dst dropped for %q", s)
		}
		enc = enc[1:]
		if !json.Valid(enc) {
			t.Fatalf("AppendString(%q) = %s: not valid JSON", s, enc)
		}
		var got string
		if err := json.Unmarshal(enc, &got); err != nil {
			t.Fatal(err)
		}
		want := s
		if !utf8.ValidString(s) {
			want = string([]rune(s)) // each invalid byte becomes U+FFFD
		}
		if got != want {
			t.Errorf("AppendString(%q) = %s, decodes to %q, want %q", s, enc, got, want)
		}
		// And our decoder reads it back the same way, as a method name.
		if want != "" {
			items, _ := rpc.Decode(rpc.AppendRequest(nil, nil, s, nil, nil))
			if items[0].Msg == nil || items[0].Msg.Method != want {
				t.Errorf("method %q: decoded as %+v", s, items[0])
			}
		}
	}
}

func TestErrorIs(t *testing.T) {
	detailed := rpc.Errorf(rpc.CodeTimeout, "after %d ms", 600000)
	wrapped := fmt.Errorf("call aftereffects.save: %w", detailed)
	twice := fmt.Errorf("publish: %w", wrapped)
	withData := fmt.Errorf("x: %w", rpc.ErrCalleeGone.WithData(map[string]bool{"may_have_run": true}))

	cases := []struct {
		err    error
		target error
		want   bool
	}{
		{wrapped, rpc.ErrTimeout, true},
		{twice, rpc.ErrTimeout, true},
		{wrapped, rpc.ErrOverloaded, false},
		{wrapped, rpc.ErrCancelled, false},
		{withData, rpc.ErrCalleeGone, true},
		{withData, rpc.ErrTimeout, false},
		{errors.Join(errors.New("other"), wrapped), rpc.ErrTimeout, true},
		{rpc.ErrTimeout, detailed, true}, // same code either way round
		{rpc.ErrParse, rpc.ErrInvalidRequest, false},
		{rpc.ErrParse, errors.New("Parse error"), false},
		{errors.New("jsonrpc2 error -32002: call timed out"), rpc.ErrTimeout, false},
		{wrapped, (*rpc.Error)(nil), false},
	}
	for i, c := range cases {
		if got := errors.Is(c.err, c.target); got != c.want {
			t.Errorf("%d: errors.Is(%v, %v) = %v, want %v", i, c.err, c.target, got, c.want)
		}
	}

	var e *rpc.Error
	if !errors.As(withData, &e) || e.Code != rpc.CodeCalleeGone || string(e.Data) != `{"may_have_run":true}` {
		t.Fatalf("errors.As: %+v", e)
	}
	if want := "jsonrpc2 error -32004: the callee dropped and did not come back (data: {\"may_have_run\":true})"; e.Error() != want {
		t.Errorf("Error() = %q, want %q", e.Error(), want)
	}
	if want := "jsonrpc2 error -32002: after 600000 ms"; detailed.Error() != want {
		t.Errorf("Error() = %q, want %q", detailed.Error(), want)
	}
}

func TestErrorWithData(t *testing.T) {
	d := rpc.ErrNoSession.WithData(map[string]string{"app": "ae", "method": "ae.save"})
	if d.Code != rpc.CodeNoSession || d.Message != rpc.ErrNoSession.Message {
		t.Errorf("WithData changed code or message: %+v", d)
	}
	if string(d.Data) != `{"app":"ae","method":"ae.save"}` {
		t.Errorf("data = %s", d.Data)
	}
	if rpc.ErrNoSession.Data != nil {
		t.Errorf("WithData modified the sentinel: %s", rpc.ErrNoSession.Data)
	}
	if !errors.Is(d, rpc.ErrNoSession) {
		t.Error("errors.Is(WithData(...), sentinel) = false")
	}
	// A value that cannot be encoded leaves data empty, even on an error
	// that had data.
	if bad := d.WithData(make(chan int)); bad.Data != nil {
		t.Errorf("unencodable data: %s", bad.Data)
	}
	// JSON() gives a valid error object that decodes back to the same error.
	var back rpc.Error
	if err := json.Unmarshal(d.JSON(), &back); err != nil || back.Code != d.Code || back.Message != d.Message || string(back.Data) != string(d.Data) {
		t.Errorf("JSON() = %s decodes to %+v, %v", d.JSON(), back, err)
	}
}

func TestErrorCodes(t *testing.T) {
	// The numbers are part of the public wire contract (spec §5.1;
	// docs/protocol.md, Errors).
	cases := []struct {
		code     int64
		sentinel *rpc.Error
		want     int64
	}{
		{rpc.CodeParseError, rpc.ErrParse, -32700},
		{rpc.CodeInvalidRequest, rpc.ErrInvalidRequest, -32600},
		{rpc.CodeMethodNotFound, rpc.ErrMethodNotFound, -32601},
		{rpc.CodeInvalidParams, rpc.ErrInvalidParams, -32602},
		{rpc.CodeInternalError, rpc.ErrInternal, -32603},
		{rpc.CodeNoSession, rpc.ErrNoSession, -32001},
		{rpc.CodeTimeout, rpc.ErrTimeout, -32002},
		{rpc.CodeOverloaded, rpc.ErrOverloaded, -32003},
		{rpc.CodeCalleeGone, rpc.ErrCalleeGone, -32004},
		{rpc.CodeUnauthorized, rpc.ErrUnauthorized, -32005},
		{rpc.CodeShuttingDown, rpc.ErrShuttingDown, -32006},
		{rpc.CodeCancelled, rpc.ErrCancelled, -32800},
	}
	for _, c := range cases {
		if c.code != c.want || c.sentinel.Code != c.want || c.sentinel.Message == "" {
			t.Errorf("code %d, sentinel %+v, want %d", c.code, c.sentinel, c.want)
		}
	}
}

// BenchmarkDecode decodes the two messages of a routed call: the request a
// tool sends and the reply its host sends back.
func BenchmarkDecode(b *testing.B) {
	params := `{"path":"/shots/sh010/comp_v012.aep","comps":true,"folders":false,"pad":"` + strings.Repeat("x", 120) + `"}`
	for _, bm := range []struct{ name, msg string }{
		{"request", `{"jsonrpc":"2.0","id":17,"method":"aftereffects.get_items","params":` + params + `}`},
		{"reply", `{"jsonrpc":"2.0","id":"c-abcdefgh-1k2","result":` + params + `}`},
	} {
		b.Run(bm.name, func(b *testing.B) {
			msg := []byte(bm.msg)
			b.ReportAllocs()
			b.SetBytes(int64(len(msg)))
			for b.Loop() {
				if items, _ := rpc.Decode(msg); items[0].Err != nil {
					b.Fatal(items[0].Err)
				}
			}
		})
	}
}

func TestHasMember(t *testing.T) {
	for msg, want := range map[string]bool{
		`{"jsonrpc":"2.0","id":1,"method":"a.b"}`:               true,
		`{"id":3,"method":"AfterEffects.ping","jsonrpc":null}`:  true,
		"{\n \"id\": 3,\n \"method\": \"AfterEffects.ping\"\n}": false,
		`{"id":3,"params":{"jsonrpc":"2.0"}}`:                   false, // nested members do not count
		`[{"jsonrpc":"2.0"}]`:                                   false,
		`{"jsonrpc"`:                                            false,
		`{"json\u0072pc":"2.0"}`:                                true,
	} {
		if got := rpc.HasMember([]byte(msg), "jsonrpc"); got != want {
			t.Errorf("HasMember(%s, jsonrpc) = %v, want %v", msg, got, want)
		}
	}
}
