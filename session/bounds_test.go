package session_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dccbridge/dccbridge/internal/bridgetest"
	"github.com/dccbridge/dccbridge/session"
)

// Nothing a peer does grows the bridge's memory or its metrics without
// bound: stored contexts of apps that are gone are forgotten, and the call
// metrics take a bounded number of method and app label values.

// contextOf reads the stored context of app (and instance) with
// bridge.context.
func contextOf(t *testing.T, p *bridgetest.Peer, app, instance string) string {
	t.Helper()
	r := p.Call("read-"+app+instance, "bridge.context", map[string]any{"app": app, "target": instance})
	return rtJSON(r["result"].(map[string]any)["context"])
}

func TestContextsOfGoneAppsForgotten(t *testing.T) {
	b := bridgetest.Start(t, &session.Options{Logger: quietLogger(), ContextRetention: 100 * time.Millisecond, MaxContexts: 50}, nil)
	tool := bridgetest.Dial(t, b.WSURL, nil)
	tool.Hello(map[string]any{"app": "pipeline", "kind": "tool"})
	host := bridgetest.Dial(t, b.WSURL, nil)
	host.Hello(map[string]any{"app": "aftereffects", "instance": "ae-1"})

	push := func(app, target string) {
		t.Helper()
		r := tool.Call("push-"+app+target, "bridge.context", map[string]any{"app": app, "target": target, "context": map[string]any{"task": app + target}})
		if r["error"] != nil {
			t.Fatalf("push: %v", r["error"])
		}
	}
	push("aftereffects", "ae-1")
	push("photoshop", "")
	push("maya", "m-1")
	time.Sleep(150 * time.Millisecond)
	push("blender", "") // any push forgets what is stale
	if got := contextOf(t, tool, "photoshop", ""); got != "{}" {
		t.Errorf("photoshop, never connected, pushed 150 ms ago (retention 100 ms): context %s, want forgotten", got)
	}
	if got := contextOf(t, tool, "maya", "m-1"); got != "{}" {
		t.Errorf("maya m-1, never connected: context %s, want forgotten", got)
	}
	if got := contextOf(t, tool, "aftereffects", "ae-1"); got != `{"task":"aftereffectsae-1"}` {
		t.Errorf("aftereffects ae-1, connected: context %s, want kept", got)
	}
	if got := contextOf(t, tool, "blender", ""); got != `{"task":"blender"}` {
		t.Errorf("blender, just pushed: context %s, want kept", got)
	}

	// A flood of pushes for instances that never connect keeps at most
	// MaxContexts, the connected instance's among them.
	for i := range 200 {
		push("ghost", fmt.Sprint("g-", i))
	}
	if got := contextOf(t, tool, "aftereffects", "ae-1"); got != `{"task":"aftereffectsae-1"}` {
		t.Errorf("after the flood, aftereffects ae-1: context %s, want kept", got)
	}
	if got := contextOf(t, tool, "ghost", "g-0"); got != "{}" {
		t.Errorf("after the flood, the oldest ghost context %s, want evicted", got)
	}
	if got := contextOf(t, tool, "ghost", "g-199"); got != `{"task":"ghostg-199"}` {
		t.Errorf("after the flood, the newest ghost context %s, want kept", got)
	}
}

// methodLabels gathers the router's metrics and returns the distinct
// values of the method and app labels of dccbridge_calls_total.
func callLabelValues(t *testing.T, r *session.Router) (methods, apps map[string]bool) {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(r)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	methods, apps = map[string]bool{}, map[string]bool{}
	for _, f := range families {
		if f.GetName() != "dccbridge_calls_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "method":
					methods[l.GetValue()] = true
				case "app":
					apps[l.GetValue()] = true
				}
			}
		}
	}
	return methods, apps
}

func TestCallMetricLabelsBounded(t *testing.T) {
	b := bridgetest.Start(t, &session.Options{Logger: quietLogger(), MaxLabelValues: 5}, nil)
	tool := bridgetest.Dial(t, b.WSURL, nil)
	tool.Hello(map[string]any{"app": "pipeline", "kind": "tool"})
	var offer []string
	for i := range 20 {
		offer = append(offer, fmt.Sprint("m", i))
	}
	for i := range 8 {
		host := bridgetest.Dial(t, b.WSURL, nil)
		host.Hello(map[string]any{"app": fmt.Sprint("app", i), "methods": offer})
		for j := range 20 {
			// Each call times out at once: the method was offered, so it
			// counts under its own label while there is room.
			id := fmt.Sprint(i, "-", j)
			tool.Send(map[string]any{"jsonrpc": "2.0", "id": id, "method": fmt.Sprintf("app%d.m%d", i, j), "meta": map[string]any{"timeout_ms": 1}})
			tool.Expect(5*time.Second, func(m map[string]any) bool { return m["id"] == id })
		}
	}
	methods, apps := callLabelValues(t, b.Router)
	if len(methods) != 6 || !methods["other"] {
		t.Errorf("method label values %v: want 5 and \"other\"", methods)
	}
	if len(apps) != 6 || !apps["other"] {
		t.Errorf("app label values %v: want 5 and \"other\"", apps)
	}
}
