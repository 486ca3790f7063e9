"""The examples, run here: the publisher against a fake After Effects
host, the Blender add-on and the Maya shelf script with fakes of bpy and
maya that record what the handlers asked of them."""

import importlib.util
import os
import sys
import threading
import time
import types

from dccbridge import Bridge
from dccbridge.executors import ThreadPoolExecutor

EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples")


def load(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(EXAMPLES, name + ".py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def wait_host(app, tool):
    deadline = time.time() + 10
    while time.time() < deadline:
        if any(s["app"] == app for s in tool.call("bridge.sessions")):
            return
        time.sleep(0.05)
    raise AssertionError(app + " never connected")


def test_publisher(bridge, capsys):
    ae = Bridge(app="aftereffects", kind="host", executor=ThreadPoolExecutor())
    ae.handle("get_items", lambda comps, folders, footages: '[{"id":1,"name":"comp_sh010"}]')
    ae.handle("set_context", lambda **ctx: True)
    ae.start()
    try:
        load("publisher").main("/shots/sh010", "comp")
    finally:
        ae.close()
    out = capsys.readouterr().out
    assert "comp_sh010" in out and ae.instance in out


def test_blender_addon(bridge, monkeypatch):
    timers, exported, unregistered = [], [], []
    bpy = types.ModuleType("bpy")
    bpy.app = types.SimpleNamespace(timers=types.SimpleNamespace(register=lambda fn, persistent=False: timers.append(fn),
                                                                unregister=unregistered.append))
    bpy.ops = types.SimpleNamespace(wm=types.SimpleNamespace(alembic_export=lambda **kw: exported.append((kw, threading.current_thread()))))
    monkeypatch.setitem(sys.modules, "bpy", bpy)
    addon = load("blender_addon")
    addon.register()
    stop = threading.Event()
    main = threading.Thread(target=lambda: [time.sleep(timers[0]()) for _ in iter(lambda: stop.is_set(), True)], daemon=True)
    main.start()  # Blender's main loop, running its timers
    tool = Bridge(app="pipeline").start()
    try:
        wait_host("blender", tool)
        assert tool.call("blender.export_abc", path="/tmp/sh010.abc", start=1001, end=1100) == {"written": "/tmp/sh010.abc"}
        assert exported[0][0] == {"filepath": "/tmp/sh010.abc", "start": 1001, "end": 1100}
        assert exported[0][1] is main, "the export ran on Blender's main thread"
    finally:
        stop.set()
        tool.close()
        addon.unregister()
    assert unregistered == timers, "disabling the add-on unregisters its timer"


def test_maya_shelf(bridge, monkeypatch):
    commands = []
    maya = types.ModuleType("maya")
    maya.cmds = types.ModuleType("maya.cmds")
    maya.cmds.AbcExport = lambda j: commands.append(j)
    maya.utils = types.ModuleType("maya.utils")
    maya.utils.executeInMainThreadWithResult = lambda fn, *a, **kw: fn(*a, **kw)
    for name, m in (("maya", maya), ("maya.cmds", maya.cmds), ("maya.utils", maya.utils)):
        monkeypatch.setitem(sys.modules, name, m)
    shelf = load("maya_shelf")
    tool = Bridge(app="pipeline").start()
    try:
        wait_host("maya", tool)
        assert tool.call("maya.export_abc", path="/tmp/cache.abc", root="|char") == {"written": "/tmp/cache.abc"}
        assert commands == ["-frameRange 1 1 -root |char -file /tmp/cache.abc"]
    finally:
        tool.close()
        shelf.bridge.close()
