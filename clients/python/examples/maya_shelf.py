"""A Maya shelf button: offers maya.export_abc to pipeline tools while Maya
runs. The handler runs on Maya's main thread
(maya.utils.executeInMainThreadWithResult).
"""
import maya.cmds as cmds

from dccbridge import Bridge
from dccbridge.executors import MayaExecutor


def export_abc(path, root="|world", start=1, end=1):
    cmds.AbcExport(j="-frameRange %d %d -root %s -file %s" % (start, end, root, path))
    return {"written": path}


bridge = Bridge(app="maya", kind="host", label="Maya", executor=MayaExecutor())
bridge.handle("export_abc", export_abc)
bridge.start(wait=False)
