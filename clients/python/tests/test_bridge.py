"""The SDK against a real bridge."""

import os
import socket
import subprocess
import sys
import threading
import time

import pytest

import dccbridge
from dccbridge import Bridge, BridgeError, CallCancelled
from dccbridge.executors import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))


def host(app="demo", **kw):
    return Bridge(app=app, kind="host", executor=ThreadPoolExecutor(), **kw)


def wait_until(cond, what, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(what + " never came")


def test_calls_both_ways(bridge):
    h = host()
    h.handle("add", lambda a, b: a + b)
    h.start()
    tool = Bridge(app="pipeline", label="Publisher")
    tool.handle("publish", lambda shot: "published " + shot)
    tool.start()
    try:
        assert tool.call("demo.add", a=2, b=3) == 5
        assert h.call("pipeline.publish", shot="sh010") == "published sh010"
        with pytest.raises(BridgeError) as e:
            tool.call("demo.nope", wait=0)
        assert e.value.code == -32601
    finally:
        tool.close()
        h.close()


def test_progress_and_cancel(bridge):
    seen = {}
    h = host()

    @h.handle("render")
    def render(frames, ctx):
        ctx.progress({"done": 1, "of": frames})
        while not ctx.cancelled:
            time.sleep(0.02)
        seen["cancelled"] = True
        return "stopped"

    h.start()
    tool = Bridge(app="pipeline").start()
    progress = []
    try:
        pending = tool.call_nowait("demo.render", frames=10, on_progress=progress.append)
        wait_until(lambda: progress, "progress")
        assert progress[0] == {"done": 1, "of": 10}
        pending.cancel()
        with pytest.raises(CallCancelled):
            pending.result(5)
        wait_until(lambda: seen.get("cancelled"), "the handler seeing the cancel")
    finally:
        tool.close()
        h.close()


def test_events_and_context(bridge):
    got = []
    h = host(app="aftereffects")
    h.handle("set_context", lambda **ctx: True)
    h.start()
    watcher = Bridge(app="watcher").start()
    watcher.on("context.changed", got.append)
    watcher.on("render.*", got.append)
    tool = Bridge(app="pipeline").start()
    try:
        time.sleep(0.3)  # the subscriptions reach the bridge
        r = tool.context.set("aftereffects", project="P", folder="/shots/sh010", task="comp")
        assert [s["ok"] for s in r["sessions"]] == [True]
        assert tool.context.get("aftereffects") == {"project": "P", "folder": "/shots/sh010", "task": "comp"}
        tool.publish("render.done", {"shot": "sh010"})
        wait_until(lambda: len(got) >= 2, "the events")
        assert {"shot": "sh010"} in got
        assert any(isinstance(g, dict) and g.get("context", {}).get("task") == "comp" for g in got)
    finally:
        for b in (tool, watcher, h):
            b.close()


class CuttableProxy(object):
    """A loopback TCP proxy to the bridge whose connections the test cuts,
    as a network does."""

    def __init__(self, upstream):
        self.upstream = upstream
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.addr = "127.0.0.1:%d" % self.listener.getsockname()[1]
        self.conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.listener.accept()
            except OSError:
                return
            host, port = self.upstream.rsplit(":", 1)
            u = socket.create_connection((host, int(port)))
            self.conns += [c, u]
            for a, b in ((c, u), (u, c)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a, b):
        try:
            while True:
                data = a.recv(65536)
                if not data:
                    break
                b.sendall(data)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self):
        for s in self.conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass
        self.conns = []


def test_drop_during_call_runs_once(bridge):
    proxy = CuttableProxy(bridge.addr)
    runs = []
    release = threading.Event()
    h = host(addr=proxy.addr)

    @h.handle("export_abc")
    def export_abc(path):
        runs.append(path)
        release.wait(10)
        return "wrote " + path

    h.start()
    tool = Bridge(app="pipeline").start()
    try:
        pending = tool.call_nowait("demo.export_abc", path="/shots/sh010/cache.abc")
        wait_until(lambda: runs, "the handler")
        proxy.cut()  # the host's connection drops while it runs
        wait_until(lambda: any(s["app"] == "demo" and s["state"] == "reconnecting" for s in bridge.sessions())
                   or h._connected.is_set() is False, "the drop seen")
        release.set()
        assert pending.result(20) == "wrote /shots/sh010/cache.abc"
        time.sleep(0.5)
        assert runs == ["/shots/sh010/cache.abc"], "the handler ran %d times" % len(runs)
    finally:
        release.set()
        tool.close()
        h.close()


def test_bridge_restart(bridge):
    h = host()
    h.handle("ping_host", lambda: "here")
    h.start()
    try:
        bridge.stop()
        bridge.start()
        tool = Bridge(app="pipeline").start()
        assert tool.call("demo.ping_host", wait=10) == "here"
        tool.close()
    finally:
        h.close()


def test_handler_blocking_its_loop_is_busy_not_dead(bridge):
    """A host whose main loop is blocked for 3 s by a handler: the session
    is busy meanwhile (the bridge runs with --busy-after 1s), and the
    result arrives."""
    from dccbridge.executors import PumpExecutor

    pump = PumpExecutor()
    stop = threading.Event()

    def main_loop():  # the DCC's main thread, ticking the pump as Blender's timers do
        while not stop.is_set():
            time.sleep(pump.pump())

    threading.Thread(target=main_loop, daemon=True).start()
    h = Bridge(app="blender", kind="host", executor=pump)
    h.handle("bake", lambda: time.sleep(3) or "baked")
    h.start()
    tool = Bridge(app="pipeline").start()
    try:
        pending = tool.call_nowait("blender.bake")
        wait_until(lambda: any(s["app"] == "blender" and s["state"] == "busy" for s in bridge.sessions()), "busy", 5)
        assert pending.result(10) == "baked"
        wait_until(lambda: any(s["app"] == "blender" and s["state"] == "connected" for s in bridge.sessions()), "connected again")
    finally:
        stop.set()
        tool.close()
        h.close()


def test_stdlib_fallback_without_websockets(bridge):
    """With websockets unimportable, dccbridge.call works over POST /rpc,
    and Bridge says what it needs."""
    h = host()
    h.handle("add", lambda a, b: a + b)
    h.start()
    code = (
        "import sys; sys.modules['websockets'] = None; sys.path.insert(0, %r)\n"
        "import dccbridge\n"
        "print(dccbridge.call('demo.add', a=20, b=22))\n"
        "try:\n    dccbridge.Bridge(app='x')\nexcept ImportError as e:\n    print('ImportError:', e)\n"
    ) % os.path.join(HERE, "..")
    try:
        out = subprocess.check_output([sys.executable, "-c", code], env=dict(os.environ), timeout=30).decode()
    finally:
        h.close()
    assert out.splitlines()[0] == "42"
    assert "dccbridge.call() works without it" in out


def test_instance_kept_across_restarts_and_unique_at_once(bridge):
    """A tool started again gets the instance it had (a new boot); two of
    the same app running at once get different instances, so that they do
    not replace each other."""
    a = Bridge(app="publisher")
    first = a.instance
    a.close()
    b = Bridge(app="publisher")
    assert b.instance == first and b.boot != a.boot
    c = Bridge(app="publisher")
    assert c.instance != b.instance
    b.start()
    c.start()
    try:
        time.sleep(1.5)
        mine = [s for s in bridge.sessions() if s["app"] == "publisher"]
        assert len(mine) == 2 and all(s["state"] == "connected" for s in mine), mine
    finally:
        b.close()
        c.close()


def test_close_fails_pending_calls_and_bad_params_fail_at_once(bridge):
    h = host()
    h.handle("hang", lambda: time.sleep(30))
    h.start()
    tool = Bridge(app="pipeline").start()
    try:
        with pytest.raises(ValueError):
            tool.call("demo.hang", x=float("nan"))  # not JSON: fails in the caller, at once
        pending = tool.call_nowait("demo.hang")
        time.sleep(0.3)
        tool.close()
        with pytest.raises(dccbridge.Unreachable):
            pending.result(5)
    finally:
        h.close()


def test_a_handler_that_exits_does_not_kill_the_host(bridge):
    h = host()

    def bail():
        raise SystemExit("no")

    h.handle("bail", bail)
    h.handle("ok", lambda: "still here")
    h.start()
    tool = Bridge(app="pipeline").start()
    try:
        with pytest.raises(BridgeError) as e:
            tool.call("demo.bail")
        assert e.value.data["type"] == "SystemExit"
        assert tool.call("demo.ok") == "still here"
    finally:
        tool.close()
        h.close()


def test_a_tools_call_survives_its_reconnect(bridge):
    """The tool's connection drops while its call runs on the host: the
    tool comes back (same instance and boot), and the call's result reaches
    it; nothing runs twice."""
    proxy = CuttableProxy(bridge.addr)
    runs = []
    release = threading.Event()
    h = host()

    @h.handle("render")
    def render():
        runs.append(1)
        release.wait(10)
        return "rendered"

    h.start()
    tool = Bridge(app="pipeline", addr=proxy.addr).start()
    try:
        pending = tool.call_nowait("demo.render")
        wait_until(lambda: runs, "the handler")
        proxy.cut()
        wait_until(lambda: not tool._connected.is_set(), "the tool's drop seen")
        release.set()
        assert pending.result(20) == "rendered"
        assert runs == [1]
    finally:
        release.set()
        tool.close()
        h.close()
