package main

import (
	"context"
	"encoding/json"
	"reflect"
	"time"

	"github.com/coder/websocket"
)

// objectStream carries one JSON-RPC message per websocket text message. It
// implements jsonrpc2.ObjectStream, so the github.com/sourcegraph/jsonrpc2
// Conn of the client subcommands (dialBridge: `bridge call`, `bridge
// sessions`) runs over a coder/websocket connection. ReadObject skips
// messages it cannot decode instead of failing, so one bad message does not
// end the connection.
//
// As jsonrpc2 requires, ReadObject is called from one goroutine and
// WriteObject may be called from many (coder/websocket serializes writes).
type objectStream struct {
	conn         *websocket.Conn
	ctx          context.Context
	writeTimeout time.Duration
}

// newObjectStream returns a stream over conn. ctx bounds the whole
// connection (reads and writes); writeTimeout bounds each write (0: 10 s).
func newObjectStream(ctx context.Context, conn *websocket.Conn, writeTimeout time.Duration) *objectStream {
	if writeTimeout <= 0 {
		writeTimeout = 10 * time.Second
	}
	return &objectStream{conn: conn, ctx: ctx, writeTimeout: writeTimeout}
}

// WriteObject encodes obj as JSON and writes it as one text message.
func (s *objectStream) WriteObject(obj any) error {
	b, err := json.Marshal(obj)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.writeTimeout)
	defer cancel()
	return s.conn.Write(ctx, websocket.MessageText, b)
}

// ReadObject reads the next text message that decodes into v, a non-nil
// pointer. A message that fails to decode leaves v untouched.
func (s *objectStream) ReadObject(v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return &json.InvalidUnmarshalError{Type: reflect.TypeOf(v)}
	}
	for {
		typ, b, err := s.conn.Read(s.ctx)
		if err != nil {
			return err
		}
		if typ != websocket.MessageText {
			continue
		}
		// Decode into a fresh value: a failed decode can leave part of its
		// target set (jsonrpc2 stores a request before the request's id
		// fails to decode), and a stale request would make jsonrpc2 take the
		// next response for a request and leave its call hanging.
		fresh := reflect.New(rv.Type().Elem())
		if err := json.Unmarshal(b, fresh.Interface()); err == nil {
			rv.Elem().Set(fresh.Elem())
			return nil
		}
	}
}

// Close closes the websocket with a normal closure.
func (s *objectStream) Close() error {
	return s.conn.Close(websocket.StatusNormalClosure, "")
}
