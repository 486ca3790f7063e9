"""dccbridge: the Python SDK of the dccbridge websocket JSON-RPC bridge.

    from dccbridge import Bridge
    b = Bridge(app="pipeline", label="Publisher")
    items = b.call("aftereffects.get_items", comps=True, timeout=600)

    b = Bridge(app="blender", kind="host")
    b.handle("export_abc", export_abc)
    b.start()

dccbridge.call(...) makes a one-shot call with the standard library only
(POST /rpc). Bridge needs the websockets library.
"""

from ._http import call
from .errors import BridgeError, CallCancelled, Unreachable

__all__ = ["Bridge", "BridgeError", "CallCancelled", "Unreachable", "call"]
__version__ = "0.1.0"


def __getattr__(name):
    # Bridge is imported on first use, so that `import dccbridge` and
    # dccbridge.call work where websockets cannot be imported.
    if name == "Bridge":
        from ._client import Bridge
        return Bridge
    if name in ("CallContext", "PendingCall"):
        from . import _client
        return getattr(_client, name)
    raise AttributeError(name)
