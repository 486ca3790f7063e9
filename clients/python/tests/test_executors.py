"""The executors, with fakes of the hosts' main-thread entry points (their
real signatures) and a fake main loop that ticks the pump as Blender's
timers do."""

import queue
import threading
import time
import types

from dccbridge.executors import BlenderExecutor, HoudiniExecutor, MayaExecutor, NukeExecutor, PumpExecutor


class FakeMainThread(object):
    """A host's main thread: it runs what is posted to it, one at a time."""

    def __init__(self):
        self.jobs = queue.Queue()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        while True:
            self.jobs.get()()

    def execute_in_main_thread_with_result(self, fn, *args, **kwargs):
        """As maya.utils / hdefereval / nuke: blocks until fn has run on the
        main thread, returns its result or raises its exception."""
        done = threading.Event()
        out = {}

        def job():
            try:
                out["value"] = fn(*args, **kwargs)
            except Exception as e:
                out["error"] = e
            done.set()

        self.jobs.put(job)
        done.wait()
        if "error" in out:
            raise out["error"]
        return out["value"]


def test_main_thread_executors_run_on_the_main_thread_in_order():
    for make in (lambda m: MayaExecutor(utils=m), lambda m: HoudiniExecutor(hdefereval=m), lambda m: NukeExecutor(nuke=m)):
        main = FakeMainThread()
        module = types.SimpleNamespace(executeInMainThreadWithResult=main.execute_in_main_thread_with_result)
        ex = make(module)
        ran = []
        futures = [ex.submit(lambda i=i: ran.append((i, threading.current_thread())) or i * 2) for i in range(10)]
        assert [f.result(5) for f in futures] == [i * 2 for i in range(10)]
        assert [i for i, _ in ran] == list(range(10))
        assert all(t is main.thread for _, t in ran)

        def boom():
            raise ValueError("no such node")

        try:
            ex.submit(boom).result(5)
            raise AssertionError("the handler's error was lost")
        except ValueError as e:
            assert str(e) == "no such node"


def test_pump_runs_a_bounded_batch_per_tick_on_the_loop_thread():
    registered = []
    timers = types.SimpleNamespace(register=lambda fn, persistent=False: registered.append(fn))
    ex = BlenderExecutor(timers=timers, batch=3)
    assert registered == [ex.pump], "the pump is registered with bpy.app.timers"
    ran = []
    futures = [ex.submit(lambda i=i: ran.append((i, threading.current_thread())) or i) for i in range(10)]
    ticks = []
    loop_thread = {}

    def blender_main_loop():  # what Blender does with a registered timer
        loop_thread["t"] = threading.current_thread()
        for _ in range(10):
            before = len(ran)
            wait = registered[0]()
            ticks.append(len(ran) - before)
            time.sleep(min(wait, 0.01))

    t = threading.Thread(target=blender_main_loop)
    t.start()
    t.join(10)
    assert [f.result(1) for f in futures] == list(range(10))
    assert [i for i, _ in ran] == list(range(10)), "in order"
    assert all(th is loop_thread["t"] for _, th in ran), "on the loop's thread"
    assert max(ticks) <= 3 and ticks[:4] == [3, 3, 3, 1], "a bounded batch per tick: %s" % ticks


def test_pump_hands_errors_to_the_caller():
    ex = PumpExecutor()

    def boom():
        raise RuntimeError("bpy.ops failed")

    f = ex.submit(boom)
    ex.pump()
    assert isinstance(f.exception(1), RuntimeError)
