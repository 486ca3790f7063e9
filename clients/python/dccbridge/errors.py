"""Errors the SDK raises."""


class BridgeError(Exception):
    """A JSON-RPC error from the bridge or a host: code, message and data
    as the bridge sent them (docs/protocol.md, Errors)."""

    def __init__(self, code, message, data=None):
        Exception.__init__(self, "%s (%d)" % (message, code))
        self.code = code
        self.message = message
        self.data = data


class Unreachable(BridgeError):
    """The bridge could not be reached (not running, wrong address)."""

    def __init__(self, message):
        BridgeError.__init__(self, -1, message)


class CallCancelled(BridgeError):
    """The call was cancelled by its caller."""

    def __init__(self):
        BridgeError.__init__(self, -32800, "cancelled")
