package session_test

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dccbridge/dccbridge/session"
)

// Routing between peers: who gets a call, and the exact frames the callee
// and the caller see.
// In memory (mem_test.go), in synctest bubbles.

// Calls in every direction (tool to host, panel to tool, tool to tool) and
// a notification: the callee gets exactly the frame with the method by the
// name it offered, the caller's params as raw bytes, and meta naming the
// caller; the caller gets exactly the callee's reply with its own id and
// meta naming the callee. Over memconn here; over real sockets in e2e_test.go.
func TestRoutingAllDirectionsExactFramesInMemory(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := startMem(t, session.Options{})
		checkAllDirections(t, func(hello map[string]any) (wirePeer, string) { return b.joinSID(hello) })
	})
}

// checkAllDirections is the body of the exact-frames tests; join connects
// a peer and says hello.
func checkAllDirections(t *testing.T, join func(hello map[string]any) (wirePeer, string)) {
	ae, aeSID := join(map[string]any{"app": "AfterEffects", "kind": "host", "instance": "ae-1", "methods": []string{"get_items", "log"}})
	tool, toolSID := join(map[string]any{"app": "pipeline", "kind": "tool", "instance": "pub-1", "methods": []string{"AfterEffects.publish_route"}})
	tracker, trackerSID := join(map[string]any{"app": "tracker", "kind": "tool", "instance": "trk-1", "methods": []string{"get_task"}})

	// The panel → tool method is registered after hello, as the SDK does.
	reg := tool.Call("reg", "bridge.register", map[string]any{"methods": []string{"publish"}})
	if got := fmt.Sprint(reg["result"]); got != "map[methods:[aftereffects.publish_route pipeline.publish]]" {
		t.Fatalf("register result = %s", got)
	}

	const defaultMS = 600000 // the bridge's default timeout, 10 min
	fids := map[string]bool{}
	cases := []struct {
		name         string
		caller       wirePeer
		callerApp    string
		callerInst   string
		callee       wirePeer
		calleeApp    string
		calleeInst   string
		calleeSID    string
		id           string // raw
		method       string // as called
		offered      string // as the callee offered it
		params       string // raw, odd on purpose
		meta         string // raw, "" for none
		minMS, maxMS int
		reply        string // what the callee answers after "id": "result":… or "error":…
		wantReply    string // what the caller gets after "id":<id>,
	}{
		{
			name: "tool to host, string id", caller: tool, callerApp: "pipeline", callerInst: "pub-1",
			callee: ae, calleeApp: "aftereffects", calleeInst: "ae-1", calleeSID: aeSID,
			id: `"t-9"`, method: "aftereffects.get_items", offered: "get_items",
			params: `{ "comps" :true,"z":1,  "a":[1, 2 ,{"é":"\u00e9"}] }`,
			meta:   `{"timeout_ms":600000}`, minMS: defaultMS / 2, maxMS: defaultMS,
			reply: `"result" : {"b" : 2,"a":[1, 2]} `, wantReply: `"result":{"b" : 2,"a":[1, 2]}`,
		},
		{
			name: "tool to host, app case-folded, big number id", caller: tool, callerApp: "pipeline", callerInst: "pub-1",
			callee: ae, calleeApp: "aftereffects", calleeInst: "ae-1", calleeSID: aeSID,
			id: `12345678901234567890123`, method: "AfterEffects.get_items", offered: "get_items",
			params: `[ 1,"two" , {"three":3}]`, meta: `{"timeout_ms":1500,"wait_ms":10}`, minMS: 1, maxMS: 1500,
			reply: `"result":[]`, wantReply: `"result":[]`,
		},
		{
			name: "tool to host, callee error forwarded as is", caller: tool, callerApp: "pipeline", callerInst: "pub-1",
			callee: ae, calleeApp: "aftereffects", calleeInst: "ae-1", calleeSID: aeSID,
			id: `"e-1"`, method: "aftereffects.get_items", offered: "get_items",
			params: `{}`, minMS: defaultMS / 2, maxMS: defaultMS,
			reply:     `"error":{"code":-32000, "message":"no project open","data":{"x":[1]}}`,
			wantReply: `"error":{"code":-32000, "message":"no project open","data":{"x":[1]}}`,
		},
		{
			name: "panel to tool (registered later), negative id", caller: ae, callerApp: "aftereffects", callerInst: "ae-1",
			callee: tool, calleeApp: "pipeline", calleeInst: "pub-1", calleeSID: toolSID,
			id: `-7`, method: "pipeline.publish", offered: "publish",
			params: `{"path":"C:\\shots\\sh010.aep","note":"line\nbreak"}`, minMS: defaultMS / 2, maxMS: defaultMS,
			reply: `"result":"published"`, wantReply: `"result":"published"`,
		},
		{
			name: "panel to tool, dotted offer in another namespace, null id", caller: ae, callerApp: "aftereffects", callerInst: "ae-1",
			callee: tool, calleeApp: "pipeline", calleeInst: "pub-1", calleeSID: toolSID,
			id: `null`, method: "aftereffects.publish_route", offered: "AfterEffects.publish_route",
			params: `{"route" : "/publish"}`, minMS: defaultMS / 2, maxMS: defaultMS,
			reply: `"result":{"ok":true}`, wantReply: `"result":{"ok":true}`,
		},
		{
			name: "tool to tool, no params", caller: tool, callerApp: "pipeline", callerInst: "pub-1",
			callee: tracker, calleeApp: "tracker", calleeInst: "trk-1", calleeSID: trackerSID,
			id: `0`, method: "tracker.get_task", offered: "get_task",
			minMS: defaultMS / 2, maxMS: defaultMS,
			reply: `"result":null`, wantReply: `"result":null`,
		},
	}
	for _, tc := range cases {
		step(t, tc.name, func(t *testing.T) {
			req := `{"jsonrpc":"2.0","id":` + tc.id + `,"method":"` + tc.method + `"`
			if tc.params != "" {
				req += `,"params":` + tc.params
			}
			if tc.meta != "" {
				req += ` ,"meta":` + tc.meta
			}
			tc.caller.Send(req + "}")
			fid := rtForwarded(t, tc.callee, tc.offered, tc.params, tc.callerApp, tc.callerInst, tc.minMS, tc.maxMS)
			if fids[fid] || fid == strings.Trim(tc.id, `"`) {
				t.Fatalf("forwarded id %q reused or not rewritten", fid)
			}
			fids[fid] = true
			tc.callee.Send(`{"id":"` + fid + `", "jsonrpc":"2.0",` + tc.reply + `}`)
			want := `{"jsonrpc":"2.0","id":` + tc.id + `,` + tc.wantReply + `,"meta":` + rtAnswerMeta(tc.calleeApp, tc.calleeInst, tc.calleeSID) + `}`
			if got := rtNext(t, tc.caller); got != want {
				t.Fatalf("caller got\n %s\nwant\n %s", got, want)
			}
		})
	}

	step(t, "notification forwarded as a notification", func(t *testing.T) {
		tool.Send(`{"jsonrpc":"2.0","method":"aftereffects.log","params":{"msg" : "hi"}}`)
		want := `{"jsonrpc":"2.0","method":"log","params":{"msg" : "hi"},"meta":{"caller":{"app":"pipeline","instance":"pub-1"}}}`
		if got := rtNext(t, ae); got != want {
			t.Fatalf("callee got\n %s\nwant\n %s", got, want)
		}
		rtQuiet(t, tool) // no reply to a notification
	})

	for _, p := range []wirePeer{ae, tool, tracker} {
		rtQuiet(t, p)
	}
}

func TestRoutingTwoInstances(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := startMem(t, session.Options{})
		ae1, sid1 := b.joinSID(map[string]any{"app": "aftereffects", "instance": "ae-1", "methods": []string{"get_items"}})
		ae2, sid2 := b.joinSID(map[string]any{"app": "aftereffects", "instance": "ae-2", "methods": []string{"get_items"}})
		tool, _ := b.joinSID(map[string]any{"app": "pipeline", "kind": "tool", "instance": "pub-1"})
		hosts := map[string]*memPeer{"ae-1": ae1, "ae-2": ae2}
		sids := map[string]string{"ae-1": sid1, "ae-2": sid2}

		// With meta.target each call reaches the named instance, though the
		// other one spoke last.
		other := map[string]string{"ae-1": "ae-2", "ae-2": "ae-1"}
		n := 0
		for _, target := range []string{"ae-2", "ae-1", "ae-2", "ae-2", "ae-1"} {
			n++
			rtQuiet(t, hosts[other[target]])
			tool.Send(`{"jsonrpc":"2.0","id":` + strconv.Itoa(n) + `,"method":"aftereffects.get_items","meta":{"target":"` + target + `"}}`)
			rtAnswer(t, hosts[target], `"`+target+`"`)
			want := `{"jsonrpc":"2.0","id":` + strconv.Itoa(n) + `,"result":"` + target + `","meta":` + rtAnswerMeta("aftereffects", target, sids[target]) + `}`
			if got := rtNext(t, tool); got != want {
				t.Fatalf("target %s: caller got %s, want %s", target, got, want)
			}
		}
		// Without it, the instance with the most recent inbound message answers.
		for _, last := range []string{"ae-1", "ae-2", "ae-1", "ae-1", "ae-2"} {
			n++
			time.Sleep(time.Millisecond) // time is fake: make the next inbound message the most recent
			rtQuiet(t, hosts[last])      // an inbound message from last
			tool.Send(`{"jsonrpc":"2.0","id":` + strconv.Itoa(n) + `,"method":"aftereffects.get_items"}`)
			rtAnswer(t, hosts[last], `"`+last+`"`)
			want := `{"jsonrpc":"2.0","id":` + strconv.Itoa(n) + `,"result":"` + last + `","meta":` + rtAnswerMeta("aftereffects", last, sids[last]) + `}`
			if got := rtNext(t, tool); got != want {
				t.Fatalf("most recent %s: caller got %s, want %s", last, got, want)
			}
		}
		// A target that is not connected waits, then -32001 naming it.
		tool.Send(`{"jsonrpc":"2.0","id":"gone","method":"aftereffects.get_items","meta":{"target":"ae-9","wait_ms":50}}`)
		data := rtExpectError(t, tool, `"gone"`, -32001)
		rtWantData(t, data, map[string]any{"app": "aftereffects", "instance": "ae-9", "method": "aftereffects.get_items"})
		for _, p := range []*memPeer{ae1, ae2, tool} {
			rtQuiet(t, p)
		}
	})
}

func TestRoutingBatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := startMem(t, session.Options{})
		ae, aeSID := b.joinSID(map[string]any{"app": "aftereffects", "instance": "ae-1", "methods": []string{"get_items", "log"}})
		tool, _ := b.joinSID(map[string]any{"app": "pipeline", "kind": "tool", "instance": "pub-1"})

		tool.Send(`[
		{"jsonrpc":"2.0","id":"b1","method":"aftereffects.get_items","params":{"n":1}},
		{"jsonrpc":"2.0","id":"b2","method":"aftereffects.get_items","params":{"n":2},"meta":{"timeout_ms":60000}},
		{"jsonrpc":"2.0","id":"b3","method":"bridge.ping"},
		{"jsonrpc":"2.0","method":"aftereffects.log","params":{"n":4}},
		42
	]`)
		// The host receives both calls and the notification, each on its own.
		fids := map[string]string{}
		for range 3 {
			got := rtNext(t, ae)
			var m struct {
				ID     string          `json:"id"`
				Method string          `json:"method"`
				Params json.RawMessage `json:"params"`
			}
			if err := json.Unmarshal([]byte(got), &m); err != nil || strings.HasPrefix(got, "[") {
				t.Fatalf("host got %s", got)
			}
			fids[string(m.Params)] = m.ID
			if m.Method == "log" && m.ID != "" {
				t.Fatalf("the batch's notification reached the host as a call: %s", got)
			}
		}
		fid1, fid2 := fids[`{"n":1}`], fids[`{"n":2}`]
		if fid1 == "" || fid2 == "" || fids[`{"n":4}`] != "" {
			t.Fatalf("host got calls %v", fids)
		}
		ae.Send(`{"jsonrpc":"2.0","id":"` + fid1 + `","result":"one"}`)
		ae.Send(`{"jsonrpc":"2.0","method":"$/progress","params":{"id":"` + fid2 + `","value":{"pct":50}}}`)
		// Progress of a member arrives at once; the batch reply waits for b2.
		if got, want := rtNext(t, tool), `{"jsonrpc":"2.0","method":"$/progress","params":{"id":"b2","value":{"pct":50}}}`; got != want {
			t.Fatalf("caller got %s, want %s", got, want)
		}
		rtQuiet(t, tool)
		ae.Send(`{"jsonrpc":"2.0","id":"` + fid2 + `","result":"two"}`)
		got := rtNext(t, tool)
		var members []json.RawMessage
		if err := json.Unmarshal([]byte(got), &members); err != nil {
			t.Fatalf("want one array reply, got %s", got)
		}
		meta := rtAnswerMeta("aftereffects", "ae-1", aeSID)
		want := map[string]string{
			`"b1"`: `{"jsonrpc":"2.0","id":"b1","result":"one","meta":` + meta + `}`,
			`"b2"`: `{"jsonrpc":"2.0","id":"b2","result":"two","meta":` + meta + `}`,
		}
		seen := map[string]bool{}
		for _, mem := range members {
			var m struct {
				ID     json.RawMessage `json:"id"`
				Result json.RawMessage `json:"result"`
				Error  *struct {
					Code int64 `json:"code"`
				} `json:"error"`
			}
			if err := json.Unmarshal(mem, &m); err != nil {
				t.Fatalf("bad member %s", mem)
			}
			id := string(m.ID)
			seen[id] = true
			switch id {
			case `"b1"`, `"b2"`:
				if string(mem) != want[id] {
					t.Fatalf("member %s\n got %s\nwant %s", id, mem, want[id])
				}
			case `"b3"`:
				var r struct {
					Pong bool `json:"pong"`
				}
				if json.Unmarshal(m.Result, &r) != nil || !r.Pong {
					t.Fatalf("ping member: %s", mem)
				}
			case `null`:
				if m.Error == nil || m.Error.Code != -32600 {
					t.Fatalf("invalid member: %s", mem)
				}
			default:
				t.Fatalf("unexpected member %s", mem)
			}
		}
		if len(members) != 4 || len(seen) != 4 {
			t.Fatalf("want 4 members (notification omitted), got %s", got)
		}
		rtQuiet(t, tool)
		rtQuiet(t, ae)
	})
}

func TestRoutingDuplicateID(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := startMem(t, session.Options{})
		ae, aeSID := b.joinSID(map[string]any{"app": "aftereffects", "instance": "ae-1", "methods": []string{"render"}})
		tool, _ := b.joinSID(map[string]any{"app": "pipeline", "kind": "tool", "instance": "pub-1"})

		tool.Send(`{"jsonrpc":"2.0","id":7,"method":"aftereffects.render","params":["first"]}`)
		fid := rtForwarded(t, ae, "render", `["first"]`, "pipeline", "pub-1", 1, 600000)
		tool.Send(`{"jsonrpc":"2.0","id":7,"method":"aftereffects.render","params":["second"]}`)
		rtExpectError(t, tool, `7`, -32600)
		rtQuiet(t, ae) // the second never reached the host
		ae.Send(`{"jsonrpc":"2.0","id":"` + fid + `","result":"first done"}`)
		if got, want := rtNext(t, tool), `{"jsonrpc":"2.0","id":7,"result":"first done","meta":`+rtAnswerMeta("aftereffects", "ae-1", aeSID)+`}`; got != want {
			t.Fatalf("caller got %s, want %s", got, want)
		}
		// Once answered, the id is free again.
		tool.Send(`{"jsonrpc":"2.0","id":7,"method":"aftereffects.render","params":["third"]}`)
		rtAnswer(t, ae, `"third done"`)
		if got, want := rtNext(t, tool), `{"jsonrpc":"2.0","id":7,"result":"third done","meta":`+rtAnswerMeta("aftereffects", "ae-1", aeSID)+`}`; got != want {
			t.Fatalf("caller got %s, want %s", got, want)
		}
	})
}

// A huge timeout_ms or wait_ms means "practically forever", not an
// overflowed duration that fires at once.
func TestRoutingHugeTimeouts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := startMem(t, session.Options{})
		host, _ := b.joinSID(map[string]any{"app": "aftereffects", "instance": "ae-1", "methods": []string{"render"}})
		tool, _ := b.joinSID(map[string]any{"app": "pipeline", "kind": "tool"})
		tool.Send(`{"jsonrpc":"2.0","id":1,"method":"aftereffects.render","meta":{"timeout_ms":1e300,"wait_ms":1e300}}`)
		fid := rtAnswer(t, host, `"done"`)
		if fid == "" {
			t.Fatal("no forwarded id")
		}
		if r := tool.Read(); r["result"] != "done" {
			t.Fatalf("want the result, got %v", r)
		}
	})
}
