package session

import (
	"cmp"
	"encoding/json"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dccbridge/dccbridge/retry"
	"github.com/dccbridge/dccbridge/rpc"
)

// caller is the side of a peer that makes calls: a session, or one POST
// /rpc request. Guarded by Router.mu.
type caller struct {
	who      *identity
	session  *Session         // nil for POST /rpc
	inflight map[string]*call // calls in flight, by the caller's raw id
}

// Call states, in call.state.
const (
	callWaiting   int32 = iota // no callee yet
	callQueued                 // in a callee's queue, not yet written
	callWritten                // written (or being written) to the callee
	callWithdrawn              // taken back before it was written
)

// call is one routed request in flight. Its fields are guarded by
// Router.mu, except state, which the callee's writer also changes.
type call struct {
	seq        uint64          // the order calls were made in; waits and re-sends keep it
	fid        string          // forwarded id, never reused
	id         json.RawMessage // the caller's id, exact bytes
	method     string          // full name: namespace.rest
	app        string          // namespace
	params     json.RawMessage
	caller     *caller // nil for calls the bridge makes itself
	by         *caller // for those: on whose behalf, named in meta.caller
	out        sink
	target     string
	idempotent bool
	catalogued bool          // the catalog lists its method: it waits for a host even when its app looks present
	timeout    time.Duration // from the caller's meta.timeout_ms
	wait       time.Duration // from the caller's meta.wait_ms
	started    time.Time
	callee     *Session
	attempt    int
	state      atomic.Int32
	timer      *time.Timer     // the call's timeout
	progress   json.RawMessage // the last $/progress value its callee sent, for the calls list
	labels     callLabels      // its metric labels, fixed when it starts (metrics.go)
}

// markWritten is called by the callee's writer just before writing the
// call; it reports false when the call was withdrawn and must not be sent.
func (c *call) markWritten() bool { return c.state.CompareAndSwap(callQueued, callWritten) }

// markWithdrawn takes back a queued call so that it is never written. It
// reports whether the call is withdrawn (by this or an earlier call), and
// false when it has already been written.
func (c *call) markWithdrawn() bool {
	return c.state.CompareAndSwap(callQueued, callWithdrawn) || c.state.Load() == callWithdrawn
}

func (c *call) written() bool { return c.state.Load() == callWritten }

// errorData names what an error about the call is about: app, method and
// the instance it went (or was meant) to.
func (c *call) errorData() map[string]any {
	d := map[string]any{"app": c.app, "method": c.method}
	if c.callee != nil {
		d["instance"] = c.callee.instance
	} else if c.target != "" {
		d["instance"] = c.target
	}
	return d
}

// callsInOrder returns the calls of m in the order they were made.
func callsInOrder(m map[string]*call) []*call {
	list := make([]*call, 0, len(m))
	for _, cl := range m {
		list = append(list, cl)
	}
	slices.SortFunc(list, func(a, b *call) int { return cmp.Compare(a.seq, b.seq) })
	return list
}

// callTable is every call in flight, by forwarded id, and the calls
// waiting for a session that offers their method, in the order they were
// made. Guarded by Router.mu.
type callTable struct {
	byFID   map[string]*call
	waiting *retry.Waitlist[*call]
}

func newCallTable(mu sync.Locker) callTable {
	return callTable{byFID: map[string]*call{}, waiting: retry.NewWaitlist[*call](mu)}
}

// inOrder returns every call in flight in the order they were made.
func (t *callTable) inOrder() []*call { return callsInOrder(t.byFID) }

// callMeta is the routing hints a caller may put in meta.
type callMeta struct {
	Target     string   `json:"target"`
	TimeoutMS  *float64 `json:"timeout_ms"`
	WaitMS     *float64 `json:"wait_ms"`
	Idempotent *bool    `json:"idempotent"`
}

func parseMeta(raw json.RawMessage) (callMeta, *rpc.Error) {
	if raw == nil {
		return callMeta{}, nil
	}
	return decodeMeta(raw)
}

// decodeMeta is parseMeta's work, a function of its own so that a call
// without meta allocates nothing here.
func decodeMeta(raw json.RawMessage) (callMeta, *rpc.Error) {
	var m callMeta
	if err := json.Unmarshal(raw, &m); err != nil {
		return m, rpc.Errorf(rpc.CodeInvalidParams, "invalid meta: target must be a string, timeout_ms and wait_ms numbers, idempotent a boolean (%v)", err)
	}
	if (m.TimeoutMS != nil && *m.TimeoutMS <= 0) || (m.WaitMS != nil && *m.WaitMS < 0) {
		return m, rpc.Errorf(rpc.CodeInvalidParams, "invalid meta: timeout_ms must be positive and wait_ms not negative")
	}
	return m, nil
}

// msDuration converts a meta member in milliseconds, def when absent; a
// value too large for a time.Duration means "practically forever".
func msDuration(ms *float64, def time.Duration) time.Duration {
	switch {
	case ms == nil:
		return def
	case *ms >= float64(math.MaxInt64/int64(time.Millisecond)):
		return math.MaxInt64
	}
	return time.Duration(*ms * float64(time.Millisecond))
}

// splitMethod returns the namespace (case-folded) and the full name of a
// method name, or ok false when it has no namespace.
func splitMethod(name string) (ns, full string, ok bool) {
	dot := strings.IndexByte(name, '.')
	if dot <= 0 || dot == len(name)-1 {
		return "", "", false
	}
	ns = strings.ToLower(name[:dot])
	if ns == name[:dot] {
		return ns, name, true
	}
	return ns, ns + name[dot:], true
}

// forwardedID returns a forwarded id's text, aliasing id; forwarded ids
// need no escapes.
func forwardedID(id json.RawMessage) ([]byte, bool) {
	if len(id) < 2 || id[0] != '"' {
		return nil, false
	}
	return id[1 : len(id)-1], true
}

// CallInfo describes a call in flight.
type CallInfo struct {
	ID       string          `json:"id"` // the forwarded id
	Method   string          `json:"method"`
	App      string          `json:"app"`
	Progress json.RawMessage `json:"progress,omitempty"` // the last $/progress value its callee sent
	Caller   string          `json:"caller"`             // app/instance of the caller ("http/<address>" for POST /rpc), or "bridge"
	Target   string          `json:"target,omitempty"`   // meta.target
	Callee   string          `json:"callee,omitempty"`   // the instance it was sent to
	State    string          `json:"state"`              // waiting, queued, written, parked
	Attempt  int             `json:"attempt"`
	Started  time.Time       `json:"started"`
	AgeMS    int64           `json:"age_ms"`
	Timeout  int64           `json:"timeout_ms"`
	Deadline time.Time       `json:"deadline"`
}

// Calls lists the calls in flight, oldest first.
func (r *Router) Calls() []CallInfo {
	r.mu.Lock()
	defer r.unlock()
	now := time.Now()
	calls := r.calls.inOrder()
	list := make([]CallInfo, 0, len(calls))
	for _, cl := range calls {
		ci := CallInfo{
			ID: cl.fid, Method: cl.method, App: cl.app, Target: cl.target, Attempt: cl.attempt,
			Started: cl.started.UTC(), AgeMS: now.Sub(cl.started).Milliseconds(),
			Timeout: cl.timeout.Milliseconds(), Deadline: cl.started.Add(cl.timeout).UTC(),
			Caller: "bridge", State: "waiting",
		}
		ci.Progress = cl.progress
		if c := cl.caller; c != nil {
			ci.Caller = c.who.app
			if c.who.instance != "" {
				ci.Caller += "/" + c.who.instance
			}
		}
		if s := cl.callee; s != nil {
			ci.Callee = s.instance
			switch {
			case s.reconnecting:
				ci.State = "parked"
			case cl.written():
				ci.State = "written"
			default:
				ci.State = "queued"
			}
		}
		list = append(list, ci)
	}
	return list
}
