"""Where handlers run. A DCC's scene may be touched only from its main
thread, so a host's handlers go there, through the entry point the DCC
gives for it; elsewhere they run on a thread pool. Each executor's
submit(fn) returns a concurrent.futures.Future of fn's result, and never
blocks the network thread.

auto_executor() picks one for the process it runs in; give Bridge an
executor to choose yourself.
"""

import collections
import concurrent.futures
import sys
import threading


class ThreadPoolExecutor(object):
    """Handlers on a pool of threads: for tools, and hosts without a main
    thread to keep. Enough threads that handlers calling back through the
    bridge do not starve each other."""

    def __init__(self, workers=16):
        self.thread_pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dccbridge")

    def submit(self, fn):
        return self.thread_pool.submit(fn)


class _MainThreadExecutor(object):
    """Runs fn through run_on_main(fn) on a worker thread, which waits
    while the main thread runs it: the entry points of Maya, Houdini and
    Nuke (executeInMainThreadWithResult) block their caller until done.
    Listeners and progress callbacks use thread_pool."""

    def __init__(self, run_on_main, workers=4):
        self._run_on_main = run_on_main
        self.thread_pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dccbridge")
        # One waiter: handlers reach the main thread one at a time, in order.
        self._waiter = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="dccbridge-main")

    def submit(self, fn):
        return self._waiter.submit(self._run_on_main, fn)


class MayaExecutor(_MainThreadExecutor):
    """maya.utils.executeInMainThreadWithResult(fn)."""

    def __init__(self, utils=None):
        if utils is None:
            import maya.utils as utils  # noqa: F811 (inside Maya only)
        _MainThreadExecutor.__init__(self, utils.executeInMainThreadWithResult)


class HoudiniExecutor(_MainThreadExecutor):
    """hdefereval.executeInMainThreadWithResult(fn)."""

    def __init__(self, hdefereval=None):
        if hdefereval is None:
            import hdefereval  # inside Houdini's UI only
        _MainThreadExecutor.__init__(self, hdefereval.executeInMainThreadWithResult)


class NukeExecutor(_MainThreadExecutor):
    """nuke.executeInMainThreadWithResult(fn)."""

    def __init__(self, nuke=None):
        if nuke is None:
            import nuke
        _MainThreadExecutor.__init__(self, nuke.executeInMainThreadWithResult)


class PumpExecutor(object):
    """Handlers queued for a host's main loop to run: pump() runs at most
    batch of them and returns how long to wait before the next pump. This
    is Blender's pattern (bpy.app.timers, as Blender Cloud's asyncio loop
    does it); any host with a periodic callback on its main thread can
    drive it."""

    def __init__(self, batch=8, interval=0.02, workers=4):
        self.batch, self.interval = batch, interval
        self._queue = collections.deque()
        self._lock = threading.Lock()
        self.thread_pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dccbridge")

    def submit(self, fn):
        future = concurrent.futures.Future()
        with self._lock:
            self._queue.append((fn, future))
        return future

    def pump(self):
        """Runs up to batch queued handlers, on the calling (main) thread."""
        for _ in range(self.batch):
            with self._lock:
                if not self._queue:
                    break
                fn, future = self._queue.popleft()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn())
            except BaseException as e:  # handed to the caller as an error
                future.set_exception(e)
        return self.interval


class BlenderExecutor(PumpExecutor):
    """A bpy.app.timers pump: registered once, it runs a bounded batch of
    handlers per tick on Blender's main thread."""

    def __init__(self, timers=None, batch=8, interval=0.02):
        PumpExecutor.__init__(self, batch, interval)
        if timers is None:
            import bpy
            timers = bpy.app.timers
        self._timers = timers
        timers.register(self.pump, persistent=True)

    def close(self):
        """Unregisters the pump (an add-on disabled and enabled again does
        not stack timers)."""
        unregister = getattr(self._timers, "unregister", None)
        if unregister is not None:
            try:
                unregister(self.pump)
            except ValueError:
                pass  # not registered any more


class QtExecutor(object):
    """A queued call onto the Qt GUI thread (any Qt host: Nuke, Houdini,
    Maya, Substance Painter, a standalone tool)."""

    def __init__(self, qtcore=None, workers=4):
        if qtcore is None:
            qtcore = _import_qtcore()
        self.thread_pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dccbridge")
        qt = qtcore
        signal = getattr(qt, "Signal", None) or qt.pyqtSignal
        slot = getattr(qt, "Slot", None) or qt.pyqtSlot

        class _Runner(qt.QObject):
            run = signal(object)

            @slot(object)
            def _run(self, job):
                job()

        # The slot belongs to the QObject, which lives on the GUI thread: a
        # queued call runs there, whichever thread made the executor.
        self._runner = _Runner()
        self._runner.run.connect(self._runner._run, qt.Qt.QueuedConnection)
        self._runner.moveToThread(qt.QCoreApplication.instance().thread())

    def submit(self, fn):
        future = concurrent.futures.Future()

        def job():
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn())
                except BaseException as e:
                    future.set_exception(e)

        self._runner.run.emit(job)
        return future


def _import_qtcore():
    """QtCore of the Qt binding the application has loaded (never one it
    did not), with an application running."""
    for name in ("PySide6", "PySide2", "PyQt6", "PyQt5"):
        if name not in sys.modules:
            continue
        try:
            module = __import__(name + ".QtCore", fromlist=["QtCore"])
        except ImportError:
            continue
        if module.QCoreApplication.instance() is not None:
            return module
    raise ImportError("no Qt application")


def auto_executor(threads_only=False):
    """The executor for the host this process is: Blender, Maya, Houdini
    (with its UI), Nuke, a Qt application, else a thread pool."""
    if threads_only:
        return ThreadPoolExecutor()
    modules = sys.modules
    # Each is tried on its own: a DCC's module may be there without its
    # main-thread entry point (batch mode), and the next may still fit.
    candidates = []
    bpy = modules.get("bpy")
    if bpy is not None and not getattr(getattr(bpy, "app", None), "background", True):
        candidates.append(BlenderExecutor)  # blender -b runs no timers
    cmds = modules.get("maya.cmds")
    if cmds is not None:
        try:
            if not cmds.about(batch=True):  # mayapy: no main-thread call
                candidates.append(MayaExecutor)
        except Exception:
            pass
    if "hou" in modules:
        candidates.append(HoudiniExecutor)
    if "nuke" in modules:
        candidates.append(NukeExecutor)
    candidates.append(QtExecutor)
    for make in candidates:
        try:
            return make()
        except Exception:
            continue
    return ThreadPoolExecutor()
