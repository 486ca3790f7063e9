package hostadapters

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/dccbridge/dccbridge/rpc"
	"github.com/dccbridge/dccbridge/session"
)

// skyhook speaks to EmbarkStudios' SkyHook server inside a DCC: POST
// {"FunctionName","Parameters"} → 200 {"Time","Success","ReturnValue",
// "Command"}, where a failure is Success false with the Python traceback
// as ReturnValue. Its server commands (SKY_LS, SKY_SHUTDOWN, …) are never
// offered: the bridge itself lists with SKY_LS, and nobody shuts the
// server down through the bridge.
type skyhook struct {
	url    string
	client *http.Client
	limit  int64
}

// skyhookReply is what a SkyHook server answers.
type skyhookReply struct {
	Success     *bool           `json:"Success"`
	ReturnValue json.RawMessage `json:"ReturnValue"`
	Command     string          `json:"Command"`
}

// skyhookTimeout starts the ReturnValue SkyHook gives when the DCC's main
// thread did not run the function within its 10 s ("ERROR 0x5: The
// command timed out"); the function may still run.
const skyhookTimeout = "ERROR 0x5"

func (s *skyhook) kind() string { return session.KindSkyHook }

func (s *skyhook) methods(ctx context.Context) ([]string, error) {
	r, err := s.post(ctx, "SKY_LS", nil)
	if err != nil {
		return nil, err
	}
	var names []string
	if r.Success == nil || !*r.Success || json.Unmarshal(r.ReturnValue, &names) != nil {
		return nil, fmt.Errorf("SKY_LS answered %s, not a list of names", abbreviate(r.ReturnValue))
	}
	offer := names[:0]
	for _, n := range names {
		if n != "" && !strings.HasPrefix(n, "SKY_") && !strings.HasPrefix(n, "_") && !strings.ContainsAny(n, ". $") {
			offer = append(offer, n)
		}
	}
	return offer, nil
}

func (s *skyhook) probe(ctx context.Context) error {
	_, err := s.post(ctx, "SKY_LS", nil)
	return err
}

func (s *skyhook) call(ctx context.Context, method string, params json.RawMessage) (json.RawMessage, *rpc.Error, error) {
	if strings.HasPrefix(method, "SKY_") {
		return nil, rpc.Errorf(rpc.CodeMethodNotFound, "method not found: SkyHook's server commands (%s) are not reachable through the bridge", method), nil
	}
	if bytes.Contains(params, []byte(`"_Module"`)) {
		// SkyHook would look the function up in whatever module this
		// names, any module the DCC has imported.
		return nil, rpc.Errorf(rpc.CodeInvalidParams, "invalid params: _Module is not passed to SkyHook through the bridge"), nil
	}
	r, err := s.post(ctx, method, params)
	if err != nil {
		if je, ok := errors.AsType[*replyError](err); ok {
			return nil, rpc.Errorf(rpc.CodeInternalError, "%s", je.Error()), nil
		}
		return nil, nil, err
	}
	switch {
	case r.Command != "" && r.Command != method:
		// An earlier call that SkyHook gave up on (its 10 s) finished late
		// and its result came back to this request.
		e := rpc.Errorf(rpc.CodeInternalError, "SkyHook answered %s for %s: an earlier call finished late; %s may not have run", r.Command, method, method)
		e.Data = json.RawMessage(`{"may_have_run":true}`)
		return nil, e, nil
	case r.Success == nil:
		return nil, rpc.Errorf(rpc.CodeInternalError, "SkyHook's reply to %s has no Success member", method), nil
	case !*r.Success:
		var text string
		_ = json.Unmarshal(r.ReturnValue, &text)
		msg := fmt.Sprintf("%s failed in the DCC", method)
		if strings.HasPrefix(text, skyhookTimeout) {
			msg = fmt.Sprintf("%s did not start within SkyHook's 10 s (the DCC's main thread is busy); it may still run", method)
		} else if strings.Contains(text, "ValueError: Function "+method+" not found") {
			return nil, rpc.Errorf(rpc.CodeMethodNotFound, "method not found: the SkyHook server has no function %s", method), nil
		} else if last := lastLine(text); last != "" {
			msg += ": " + last
		}
		e := rpc.Errorf(rpc.CodeInternalError, "%s", msg)
		e.Data, _ = json.Marshal(map[string]any{"traceback": text, "may_have_run": strings.HasPrefix(text, skyhookTimeout)})
		return nil, e, nil
	}
	if r.ReturnValue == nil {
		return json.RawMessage("null"), nil, nil
	}
	return r.ReturnValue, nil, nil
}

// replyError is a reply that came but could not be read: the server is
// there, so the connection stays.
type replyError struct{ msg string }

func (e *replyError) Error() string { return e.msg }

// post sends one request.
func (s *skyhook) post(ctx context.Context, function string, params json.RawMessage) (skyhookReply, error) {
	if params == nil {
		params = json.RawMessage("{}")
	}
	body, _ := json.Marshal(map[string]any{"FunctionName": function, "Parameters": params})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return skyhookReply{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return skyhookReply{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, s.limit+1))
	if err != nil {
		return skyhookReply{}, err
	}
	var r skyhookReply
	switch {
	case int64(len(b)) > s.limit:
		return r, &replyError{fmt.Sprintf("SkyHook's reply to %s is larger than %d bytes", function, s.limit)}
	case resp.StatusCode != http.StatusOK:
		return r, &replyError{fmt.Sprintf("SkyHook answered %s with HTTP %d: %s", function, resp.StatusCode, abbreviate(b))}
	case json.Unmarshal(b, &r) != nil:
		return r, &replyError{fmt.Sprintf("SkyHook's reply to %s is not JSON: %s", function, abbreviate(b))}
	}
	return r, nil
}

// lastLine returns the last non-empty line of a traceback: the exception.
func lastLine(text string) string {
	lines := strings.Split(strings.TrimSpace(text), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// abbreviate returns at most 200 bytes of b, for messages.
func abbreviate(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "…"
	}
	return string(b)
}
