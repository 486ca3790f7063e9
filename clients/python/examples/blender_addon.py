"""A Blender add-on that offers blender.export_abc to pipeline tools. The
handler runs on Blender's main thread, pumped by bpy.app.timers.

Install: Edit > Preferences > Add-ons > Install, with dccbridge and
websockets on Blender's Python path (README: "Python hosts").
"""
import bpy

from dccbridge import Bridge
from dccbridge.executors import BlenderExecutor

bl_info = {"name": "dccbridge", "blender": (3, 0, 0), "category": "Pipeline"}
_bridge = None


def export_abc(path, start=1, end=1):
    bpy.ops.wm.alembic_export(filepath=path, start=start, end=end)
    return {"written": path}


def register():
    global _bridge
    _bridge = Bridge(app="blender", kind="host", label="Blender", executor=BlenderExecutor())
    _bridge.handle("export_abc", export_abc)
    _bridge.start(wait=False)  # never block Blender's start-up


def unregister():
    if _bridge is not None:
        _bridge.close()
