package session_test

import (
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dccbridge/dccbridge/session"
)

// Many tools keep many calls outstanding to one host at once: every reply
// reaches the tool that made the call, answering exactly that call.
// In memory (mem_test.go), in synctest bubbles.

func TestRoutingManyToolsManyCalls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const tools = 32
		perTool := 1000
		if testing.Short() {
			perTool = 100
		}
		b := startMem(t, session.Options{})
		host, hostSID := b.joinSID(map[string]any{"app": "aftereffects", "instance": "ae-1", "methods": []string{"echo"}})
		peers := make([]*memPeer, tools)
		for k := range peers {
			peers[k], _ = b.joinSID(map[string]any{"app": "pipeline", "kind": "tool", "instance": "tool-" + strconv.Itoa(k)})
		}
		deadline := time.Now().Add(3 * time.Minute)
		// readWithin bounds one read: silence this long means something is stuck.
		readWithin := func() time.Duration { return min(20*time.Second, time.Until(deadline)) }
		wantMeta := rtAnswerMeta("aftereffects", "ae-1", hostSID)

		// The host echoes params as the result, exactly tools × perTool times.
		// A read that times out fails the test and ends the goroutine.
		var hostErr error
		hostExited := make(chan struct{})
		go func() {
			defer close(hostExited)
			hostErr = func() error {
				var m struct {
					ID     json.RawMessage `json:"id"`
					Params json.RawMessage `json:"params"`
				}
				for range tools * perTool {
					raw, err := host.recv(readWithin())
					if err != nil {
						return fmt.Errorf("host: %w", err)
					}
					m.ID, m.Params = nil, nil
					if err := json.Unmarshal(raw, &m); err != nil || m.ID == nil || m.Params == nil {
						return fmt.Errorf("host got %s", raw)
					}
					out := `{"jsonrpc":"2.0","id":` + string(m.ID) + `,"result":` + string(m.Params) + `}`
					if err := host.p.Send([]byte(out)); err != nil {
						return fmt.Errorf("host write: %w", err)
					}
				}
				return nil
			}()
		}()

		// Each tool keeps 8 to 16 calls outstanding and checks every reply
		// against the request it answers.
		var wg sync.WaitGroup
		errs := make([]error, tools)
		answered := make([]int, tools)
		for k, p := range peers {
			wg.Go(func() {
				window := 8 + k%9
				outstanding := map[string]string{} // id → params
				sent := 0
				for answered[k] < perTool {
					for sent < perTool && len(outstanding) < window {
						id := fmt.Sprintf("%d/%d", k, sent)
						params := fmt.Sprintf(`{"tool":%d,"n":%d}`, k, sent)
						req := `{"jsonrpc":"2.0","id":"` + id + `","method":"aftereffects.echo","params":` + params + `}`
						if err := p.p.Send([]byte(req)); err != nil {
							errs[k] = fmt.Errorf("tool %d write: %w", k, err)
							return
						}
						outstanding[id] = params
						sent++
					}
					raw, err := p.recv(readWithin())
					if err != nil {
						errs[k] = fmt.Errorf("tool %d: %w", k, err)
						return
					}
					var r struct {
						ID     string          `json:"id"`
						Result json.RawMessage `json:"result"`
						Meta   json.RawMessage `json:"meta"`
					}
					if err := json.Unmarshal(raw, &r); err != nil {
						errs[k] = fmt.Errorf("tool %d: bad reply %s", k, raw)
						return
					}
					params, ok := outstanding[r.ID]
					switch {
					case !ok:
						errs[k] = fmt.Errorf("tool %d: reply to an id it has not outstanding (crossed or duplicated): %s", k, raw)
						return
					case string(r.Result) != params || string(r.Meta) != wantMeta:
						errs[k] = fmt.Errorf("tool %d: reply %s does not answer %s", k, raw, params)
						return
					}
					delete(outstanding, r.ID)
					answered[k]++
				}
			})
		}
		wg.Wait()
		total := 0
		for k := range peers {
			if errs[k] != nil {
				t.Error(errs[k])
			}
			total += answered[k]
		}
		<-hostExited
		if hostErr != nil {
			t.Fatal(hostErr)
		}
		if total != tools*perTool {
			t.Fatalf("%d replies, want %d", total, tools*perTool)
		}
		// Nothing more for anyone: no extra calls, no extra replies.
		rtQuiet(t, host)
		for _, p := range peers {
			rtQuiet(t, p)
		}
	})
}
