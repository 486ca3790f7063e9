package hostadapters

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/dccbridge/dccbridge/rpc"
	"github.com/dccbridge/dccbridge/session"
)

// unreal speaks to Unreal Editor's Remote Control API: unreal.call is
// PUT /remote/object/call, unreal.property PUT /remote/object/property,
// unreal.info GET /remote/info; the params go as the request body. A 4xx
// with {"errorMessage"} is the caller's error, with the HTTP status in its
// data.
type unreal struct {
	base   string
	client *http.Client
	limit  int64
}

// unrealRoutes maps the methods offered to Remote Control's routes.
var unrealRoutes = map[string]struct{ method, path string }{
	"call":     {http.MethodPut, "/remote/object/call"},
	"property": {http.MethodPut, "/remote/object/property"},
	"info":     {http.MethodGet, "/remote/info"},
}

func (u *unreal) kind() string { return session.KindUnrealRemote }

func (u *unreal) methods(ctx context.Context) ([]string, error) {
	if err := u.probe(ctx); err != nil {
		return nil, err
	}
	return []string{"call", "property", "info"}, nil
}

func (u *unreal) probe(ctx context.Context) error {
	status, body, err := u.do(ctx, http.MethodGet, "/remote/info", nil)
	if err == nil && status != http.StatusOK {
		err = fmt.Errorf("GET /remote/info answered HTTP %d: %s", status, abbreviate(body))
	}
	return err
}

func (u *unreal) call(ctx context.Context, method string, params json.RawMessage) (json.RawMessage, *rpc.Error, error) {
	route, ok := unrealRoutes[method]
	if !ok {
		return nil, rpc.Errorf(rpc.CodeMethodNotFound, "method not found: Unreal Remote Control has call, property and info, not %s", method), nil
	}
	if route.method == http.MethodGet {
		params = nil
	}
	status, body, err := u.do(ctx, route.method, route.path, params)
	if re, ok := errors.AsType[*replyError](err); ok {
		return nil, rpc.Errorf(rpc.CodeInternalError, "%s", re.Error()), nil
	}
	if err != nil {
		return nil, nil, err
	}
	switch {
	case status >= 200 && status < 300:
		if len(bytes.TrimSpace(body)) == 0 {
			return json.RawMessage("null"), nil, nil
		}
		if !json.Valid(body) {
			return nil, rpc.Errorf(rpc.CodeInternalError, "Unreal's reply to %s is not JSON: %s", method, abbreviate(body)), nil
		}
		return body, nil, nil
	default:
		var e struct {
			ErrorMessage string `json:"errorMessage"`
		}
		_ = json.Unmarshal(body, &e)
		msg := e.ErrorMessage
		if msg == "" {
			msg = abbreviate(body)
		}
		code := rpc.CodeInternalError
		if status == http.StatusBadRequest {
			code = rpc.CodeInvalidParams
		}
		re := rpc.Errorf(code, "Unreal %s %s answered HTTP %d: %s", route.method, route.path, status, msg)
		re.Data = statusData(status, map[string]any{"errorMessage": e.ErrorMessage})
		return nil, re, nil
	}
}

// do sends one request and returns the status and body; err means the
// server could not be reached.
func (u *unreal) do(ctx context.Context, method, path string, body json.RawMessage) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.base+path, rd)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := u.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, u.limit+1))
	if err != nil {
		return 0, nil, err
	}
	if int64(len(b)) > u.limit {
		return resp.StatusCode, nil, &replyError{fmt.Sprintf("Unreal's reply to %s %s is larger than %d bytes", method, path, u.limit)}
	}
	return resp.StatusCode, b, nil
}
