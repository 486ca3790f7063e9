"""The websockets versions: 10 to 12 take headers as extra_headers, 13
and later as additional_headers. The one installed here is tested for
real; the other's call is checked here."""

import sys
import types

from dccbridge import _ws


def test_new_api_is_preferred_and_gets_additional_headers(monkeypatch):
    def connect(uri, additional_headers=None, proxy=True, **kwargs):  # websockets 15's shape
        return uri, dict(kwargs, additional_headers=additional_headers, proxy=proxy)

    fake = types.ModuleType("websockets.asyncio.client")
    fake.connect = connect
    monkeypatch.setitem(sys.modules, "websockets.asyncio", types.ModuleType("websockets.asyncio"))
    monkeypatch.setitem(sys.modules, "websockets.asyncio.client", fake)
    conn, kwarg = _ws.import_connect()
    assert conn is connect and kwarg == "additional_headers"
    _, kwargs = conn("ws://127.0.0.1:8098/ws", **_ws.connect_kwargs(kwarg, "t0k", 1 << 20, conn))
    assert kwargs["additional_headers"] == {"Authorization": "Bearer t0k"}
    assert kwargs["proxy"] is None, "never through a proxy from the environment"
    assert "extra_headers" not in kwargs


def test_legacy_api_gets_extra_headers(monkeypatch):
    def connect(uri, **kwargs):
        return uri, kwargs

    legacy = types.ModuleType("websockets.client")
    legacy.connect = connect
    monkeypatch.setitem(sys.modules, "websockets.asyncio.client", None)  # not there: websockets < 13
    monkeypatch.setitem(sys.modules, "websockets.client", legacy)
    conn, kwarg = _ws.import_connect()
    assert conn is connect and kwarg == "extra_headers"
    _, kwargs = conn("ws://127.0.0.1:8098/ws", **_ws.connect_kwargs(kwarg, "t0k", 1 << 20))
    assert kwargs["extra_headers"] == {"Authorization": "Bearer t0k"}
    assert kwargs["max_size"] == 1 << 20


def test_no_token_no_header():
    assert "extra_headers" not in _ws.connect_kwargs("extra_headers", None, 10)
