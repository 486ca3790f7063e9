"""The JSON-RPC request both transports send."""


def request(cid, method, params, kwargs, target=None, timeout=None, wait=None, idempotent=None):
    """The request for a call: params given, or the keyword arguments, and
    the routing hints as meta (docs/protocol.md, Routing)."""
    if params is None:
        params = kwargs or None
    elif kwargs:
        raise TypeError("give params or keyword arguments, not both")
    meta = {}
    if target:
        meta["target"] = target
    if timeout is not None:
        meta["timeout_ms"] = int(timeout * 1000)
    if wait is not None:
        meta["wait_ms"] = int(wait * 1000)
    if idempotent is not None:
        meta["idempotent"] = bool(idempotent)
    msg = {"jsonrpc": "2.0", "id": cid, "method": method}
    if params is not None:
        msg["params"] = params
    if meta:
        msg["meta"] = meta
    return msg
