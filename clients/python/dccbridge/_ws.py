"""The websocket library, whichever version is installed: websockets 10 to
12 take the upgrade's headers as extra_headers (websockets.client.connect),
13 and later as additional_headers (websockets.asyncio.client.connect)."""


def import_connect():
    """Returns (connect, headers_kwarg), or raises ImportError."""
    try:
        from websockets.asyncio.client import connect  # websockets >= 13
        return connect, "additional_headers"
    except ImportError:
        from websockets.client import connect  # websockets 10 - 12 (the legacy client)
        return connect, "extra_headers"


def connect_kwargs(headers_kwarg, token, max_size, connect=None):
    """The keyword arguments of connect for the version at hand. websockets
    15 and later go through a proxy from the environment unless told not
    to: the bridge is always reached directly."""
    kwargs = {"max_size": max_size, "ping_interval": 20, "ping_timeout": 60, "open_timeout": 10, "compression": None}
    if token:
        kwargs[headers_kwarg] = {"Authorization": "Bearer " + token}
    if connect is not None and _accepts(connect, "proxy"):
        kwargs["proxy"] = None
    return kwargs


def _accepts(fn, name):
    import inspect
    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def available():
    try:
        import_connect()
        return True
    except ImportError:
        return False
