package rpc_test

import (
	"encoding/json"
	"fmt"

	"github.com/dccbridge/dccbridge/rpc"
)

// Decode a batch and answer it: one reply per request, none for the
// notification, an error for the invalid member, ids echoed exactly.
func ExampleDecode() {
	msg := []byte(`[
		{"jsonrpc":"2.0","id":12345678901234567890123,"method":"sum","params":[1,2,4]},
		{"jsonrpc":"2.0","method":"log","params":{"line":"saved"}},
		{"foo":"boo"}
	]`)
	items, batch := rpc.Decode(msg)

	var replies [][]byte
	for _, it := range items {
		switch {
		case it.Err != nil:
			replies = append(replies, rpc.AppendError(nil, it.ID, it.Err))
		case it.Msg.IsNotification():
			// no reply
		case it.Msg.Method == "sum":
			var args []int
			_ = json.Unmarshal(it.Msg.Params, &args)
			sum := 0
			for _, a := range args {
				sum += a
			}
			res, _ := json.Marshal(sum)
			replies = append(replies, rpc.AppendResult(nil, it.Msg.ID, res, nil))
		}
	}
	if batch {
		fmt.Printf("%s\n", rpc.AppendBatch(nil, replies))
	}
	// Output:
	// [{"jsonrpc":"2.0","id":12345678901234567890123,"result":7},{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Invalid Request: \"jsonrpc\" must be \"2.0\""}}]
}
