"""One-shot calls over POST /rpc, with the standard library only."""

import json
import urllib.error
import urllib.request

from . import _config, _message
from .errors import BridgeError, Unreachable


def call(method, params=None, addr=None, token=None, timeout=None, target=None, wait=None, **kwargs):
    """Calls method through the bridge's POST /rpc and returns its result.
    Needs nothing beyond the standard library; a live session (offering
    methods, events, calls that survive a reconnect) needs websockets."""
    msg = _message.request(1, method, params, kwargs, target, timeout, wait)
    addr = _config.bridge_addr(addr)
    req = urllib.request.Request("http://" + addr + "/rpc", data=json.dumps(msg).encode("utf-8"),
                                 headers={"Content-Type": "application/json"}, method="POST")
    tok = _config.bridge_token(token)
    if tok:
        req.add_header("Authorization", "Bearer " + tok)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through a proxy
    try:
        with opener.open(req, timeout=(timeout or 600) + 15) as resp:
            reply = json.loads(resp.read().decode("utf-8"))
    except urllib.error.HTTPError as e:
        raise BridgeError(-e.code, "the bridge at %s answered HTTP %d: %s" % (addr, e.code, e.read().decode("utf-8", "replace").strip()))
    except (urllib.error.URLError, OSError) as e:
        raise Unreachable("no bridge answers at %s (%s): start one with `bridge ensure`" % (addr, getattr(e, "reason", e)))
    if "error" in reply:
        err = reply["error"]
        raise BridgeError(err.get("code", 0), err.get("message", ""), err.get("data"))
    return reply.get("result")
