"""Bridge: a live session with the bridge, for pipeline tools and Python
hosts. The network runs on a thread of its own with its own asyncio loop,
so a long handler or a busy main thread never stalls it; calls block the
calling thread only (or are awaited with call_async)."""

import asyncio
import atexit
import collections
import concurrent.futures
import inspect
import itertools
import json
import os
import random
import threading
import time
import traceback
import uuid

from . import _config, _message, _ws
from .errors import BridgeError, CallCancelled, Unreachable
from .executors import auto_executor

MAX_MESSAGE = 16 << 20


class CallContext(object):
    """What a handler gets when it declares a `ctx` parameter: the
    forwarded call's id and meta, progress(), and cancelled."""

    def __init__(self, bridge, fid, meta):
        self._bridge = bridge
        self.id = fid
        self.meta = meta or {}
        self.caller = self.meta.get("caller", {})
        self._cancelled = threading.Event()

    @property
    def cancelled(self):
        """True once the caller cancelled the call or its timeout ran out."""
        return self._cancelled.is_set()

    def progress(self, value):
        """Tells the caller how far the call is ($/progress)."""
        self._bridge._notify("$/progress", {"id": self.id, "value": value})


class PendingCall(object):
    """A call in flight: result(timeout) waits for it, cancel() cancels it
    (the bridge tells its host)."""

    def __init__(self, bridge, cid, future, limit):
        self._bridge, self.id, self._future, self._limit = bridge, cid, future, limit

    def result(self, timeout=None):
        """The call's result; waits at most timeout seconds (default: the
        call's own timeout and a little), then raises BridgeError -32002."""
        try:
            return self._future.result(self._limit if timeout is None else timeout)
        except concurrent.futures.CancelledError:
            raise CallCancelled()
        except concurrent.futures.TimeoutError:
            if timeout is not None:
                raise
            self.cancel()
            raise BridgeError(-32002, "no reply within %gs: the bridge did not answer (is it still running?)" % self._limit)

    def cancel(self):
        if self._future.cancel() or not self._future.done():
            self._bridge._notify("$/cancelRequest", {"id": self.id})
            self._bridge._forget(self.id)

    def done(self):
        return self._future.done()


class _Context(object):
    """b.context: push and read an app's context (bridge.context)."""

    def __init__(self, bridge):
        self._b = bridge

    def set(self, app, target=None, timeout=None, **context):
        params = {"app": app, "context": context}
        if target:
            params["target"] = target
        return self._b.call("bridge.context", params, timeout=timeout)

    def get(self, app, target=None):
        params = {"app": app}
        if target:
            params["target"] = target
        return self._b.call("bridge.context", params)["context"]


class Bridge(object):
    """A session with the bridge.

    A tool:  b = Bridge(app="pipeline", label="Publisher"); b.call("aftereffects.get_items", comps=True)
    A host:  b = Bridge(app="blender", kind="host"); b.handle("export_abc", fn); b.start()

    Its instance is kept across restarts (a file in the user's config
    dir), its boot is new per process, and it says replay: calls it made
    survive its reconnects, and calls re-sent to it after a reconnect are
    answered from a bounded cache of results (also while the handler is
    still running), never run twice. Handlers run through executor (one
    chosen for the host: Blender, Maya, Houdini, Nuke, Qt, else a thread
    pool). Safe for use from any thread.
    """

    def __init__(self, app, kind="tool", label="", instance=None, version="", addr=None, token=None,
                 executor=None, cache_size=256, connect_timeout=10.0):
        if not _ws.available():
            raise ImportError("dccbridge.Bridge needs the websockets library (pip install websockets, or "
                              "apt install python3-websockets); dccbridge.call() works without it, over POST /rpc")
        self.app, self.kind, self.label, self.version = app, kind, label, version
        self.addr = _config.bridge_addr(addr)
        self.token = _config.bridge_token(token)
        self._instance_lock = None
        if instance:
            self.instance = instance
        else:
            self.instance, self._instance_lock = _claim_instance(app)
        self.boot = "b-" + uuid.uuid4().hex[:12]
        self.executor = executor or (auto_executor() if kind == "host" else auto_executor(threads_only=True))
        self.context = _Context(self)
        self._connect_timeout = connect_timeout
        self._handlers = {}
        self._listeners = collections.defaultdict(list)
        self._ids = itertools.count(1)
        self._pending = {}  # call id -> (future, on_progress)
        self._results = collections.OrderedDict()  # forwarded id -> concurrent future of its reply, bounded
        self._running = {}  # forwarded id -> CallContext
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self._start_lock = threading.Lock()
        # Progress and events reach their callbacks one at a time, in order.
        self._callbacks = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="dccbridge-events")
        self._hello_methods = set()
        self._loop = None
        self._stop = None  # set by close(), on the network thread's loop
        self._ws = None
        self._connected = threading.Event()
        self._closed = False
        self._thread = None
        self._last_error = None

    # -- the public API ------------------------------------------------

    def handle(self, name, fn=None):
        """Offers method name (app.name for callers), run by fn. As a
        decorator: @b.handle("export_abc"). fn gets the params as keyword
        arguments (a list as positional ones), and a CallContext if it
        has a parameter named ctx."""
        def register(fn):
            self._handlers[name] = (fn, "ctx" in _params_of(fn))
            if self._connected.is_set():
                self._submit(self._request("bridge.register", {"methods": [name]}))
            return fn
        return register(fn) if fn is not None else register

    def on(self, topic, fn):
        """Calls fn(data) for each event of topic (a pattern such as
        "context.changed" or "session.*"), on a worker thread."""
        self._listeners[topic].append(fn)
        if self._connected.is_set():
            self._submit(self._request("bridge.subscribe", {"topics": [topic]}))

    def start(self, wait=True):
        """Connects (in the background); with wait, returns once the
        first hello is done, or raises Unreachable."""
        with self._start_lock:
            if self._closed:
                raise Unreachable("this Bridge was closed")
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="dccbridge-" + self.app, daemon=True)
                self._thread.start()
                atexit.register(self.close)  # a script that ends leaves, rather than reconnecting
        if wait and not self._connected.wait(self._connect_timeout):
            if isinstance(self._last_error, BridgeError):
                raise self._last_error  # the bridge refused the hello: it says why
            raise Unreachable("no bridge answered at %s within %gs (%s): start one with `bridge ensure`"
                              % (self.addr, self._connect_timeout, self._last_error or "no answer"))
        return self

    def call(self, method, params=None, target=None, timeout=None, wait=None, idempotent=None,
             on_progress=None, **kwargs):
        """Calls method and returns its result, raising BridgeError; blocks
        the calling thread (not the network). Keyword arguments are the
        params, or give params as a dict or list."""
        pending = self.call_nowait(method, params, target, timeout, wait, idempotent, on_progress, **kwargs)
        return pending.result()

    async def call_async(self, method, params=None, target=None, timeout=None, wait=None, idempotent=None,
                         on_progress=None, **kwargs):
        """call, for asyncio code: awaiting it does not block the loop;
        cancelling the task cancels the call."""
        pending = self.call_nowait(method, params, target, timeout, wait, idempotent, on_progress, **kwargs)
        try:
            return await asyncio.wrap_future(pending._future)
        except asyncio.CancelledError:
            pending.cancel()
            raise

    def call_nowait(self, method, params=None, target=None, timeout=None, wait=None, idempotent=None,
                    on_progress=None, **kwargs):
        """Starts a call and returns a PendingCall."""
        self.start()
        cid = "py-%d" % next(self._ids)
        msg = _message.request(cid, method, params, kwargs, target, timeout, wait, idempotent)
        data = json.dumps(msg, allow_nan=False)  # what cannot be sent fails here, in the caller
        if len(data) > MAX_MESSAGE:
            raise BridgeError(-32600, "the call is %d bytes: more than the bridge takes (%d)" % (len(data), MAX_MESSAGE))
        future = concurrent.futures.Future()
        with self._lock:
            self._pending[cid] = (future, on_progress)
        self._submit(self._send_data(data))
        # The caller waits no longer than the call may live, and a little.
        return PendingCall(self, cid, future, (timeout if timeout is not None else 600.0) + 15.0)

    def publish(self, topic, data=None):
        """Publishes an event to the bridge's subscribers of topic."""
        return self.call("bridge.publish", {"topic": topic, "data": data})

    def close(self):
        """Leaves for good: the bridge forgets the session."""
        with self._start_lock:
            if self._closed:
                return
            self._closed = True
        with self._lock:
            pending, self._pending = self._pending, {}
        for future, _ in pending.values():
            if not future.done():
                future.set_exception(Unreachable("the Bridge was closed before the reply came"))
        _release_instance(self._instance_lock)
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            try:
                loop.call_soon_threadsafe(stop.set)
            except RuntimeError:
                pass  # the loop has ended already
        if self._thread is not None:
            self._thread.join(10)
        self._callbacks.shutdown(wait=False)
        close = getattr(self.executor, "close", None)
        if close is not None:
            close()  # e.g. the Blender pump's timer

    # -- the network thread --------------------------------------------

    def _run(self):
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        self._stop = asyncio.Event()
        try:
            self._loop.run_until_complete(self._connect_forever())
        finally:
            self._loop.close()

    async def _connect_forever(self):
        connect, headers_kwarg = _ws.import_connect()
        backoff = 0.5
        while not self._closed:
            try:
                ws = await connect("ws://" + self.addr + "/ws", **_ws.connect_kwargs(headers_kwarg, self.token, MAX_MESSAGE, connect))
            except Exception as e:  # refused, DNS, timeout
                self._last_error = e
                await self._pause(backoff * random.uniform(0.75, 1.25))
                backoff = min(backoff * 2, 10.0)
                continue
            self._ws = ws
            began = time.monotonic()
            try:
                await self._session(ws)
            except Exception as e:
                self._last_error = e
            finally:
                self._ws = None
                self._connected.clear()
            if getattr(ws, "close_code", None) == 4001:
                # Replaced by a new connection of this instance: two
                # processes claim it. This one gives way, rather than fight.
                self._last_error = Unreachable("replaced by another connection of instance %s" % self.instance)
                self._closed = True
                break
            if time.monotonic() - began >= 10:
                backoff = 0.5  # a session that lasted: reconnect soon
            if not self._closed:
                await self._pause(backoff * random.uniform(0.75, 1.25))
                backoff = min(backoff * 2, 10.0)

    async def _pause(self, seconds):
        """Sleeps, unless close() comes first."""
        try:
            await asyncio.wait_for(self._stop.wait(), seconds)
        except asyncio.TimeoutError:
            pass

    async def _session(self, ws):
        self._hello_methods = set(self._handlers)
        hello = {"app": self.app, "kind": self.kind, "instance": self.instance, "boot": self.boot,
                 "label": self.label, "version": self.version, "replay": True,
                 "methods": sorted(self._hello_methods)}
        if self.token:
            hello["token"] = self.token
        await ws.send(json.dumps({"jsonrpc": "2.0", "id": "hello", "method": "bridge.hello", "params": hello}))
        reader = asyncio.ensure_future(self._read(ws))  # the hello's reply registers and subscribes the rest
        stop = asyncio.ensure_future(self._stop.wait())
        await asyncio.wait([reader, stop], return_when=asyncio.FIRST_COMPLETED)
        if stop.done():  # close(): leave for good with a normal close
            await ws.close()
            reader.cancel()
        else:
            stop.cancel()
        try:
            await reader
        except asyncio.CancelledError:
            pass

    async def _read(self, ws):
        async for raw in ws:
            msg = json.loads(raw)
            for m in (msg if isinstance(msg, list) else [msg]):
                self._dispatch(m)

    def _dispatch(self, m):
        method = m.get("method")
        if method is None:
            self._reply_came(m)
        elif method == "$/progress":
            p = m.get("params") or {}
            with self._lock:
                entry = self._pending.get(p.get("id"))
            if entry and entry[1]:
                self._callbacks.submit(entry[1], p.get("value"))
        elif method == "$/cancelRequest":
            ctx = self._running.get((m.get("params") or {}).get("id"))
            if ctx:
                ctx._cancelled.set()
        elif method == "bridge.event":
            p = m.get("params") or {}
            for pattern, fns in list(self._listeners.items()):
                if _matches(pattern, p.get("topic", "")):
                    for fn in fns:
                        self._callbacks.submit(fn, p.get("data"))
        elif "id" in m:
            self._incoming_call(m)
        elif method in self._handlers:  # a notification: run, nobody waits for a reply
            fn, wants_ctx = self._handlers[method]
            params = m.get("params")
            self.executor.submit(lambda: _invoke(fn, wants_ctx, CallContext(self, None, m.get("meta")), params))

    def _reply_came(self, m):
        rid = m.get("id")
        if rid == "hello":
            if "error" in m:
                self._last_error = BridgeError(m["error"].get("code", 0), m["error"].get("message", ""), m["error"].get("data"))
                return
            self._connected.set()
            # Handlers added while the hello was on its way, and every topic
            # (again, after a reconnect).
            late = sorted(set(self._handlers) - self._hello_methods)
            if late:
                self._submit(self._request("bridge.register", {"methods": late}))
            if self._listeners:
                self._submit(self._request("bridge.subscribe", {"topics": sorted(self._listeners)}))
            return
        with self._lock:
            entry = self._pending.pop(rid, None)
        if entry is None:
            return
        future = entry[0]
        if future.done():
            return
        if "error" in m:
            e = m["error"]
            future.set_exception(BridgeError(e.get("code", 0), e.get("message", ""), e.get("data")))
        else:
            future.set_result(m.get("result"))

    def _incoming_call(self, m):
        fid = m["id"]
        if fid in self._results:  # re-sent after a reconnect: never run twice
            self._results[fid].add_done_callback(lambda f: self._submit(self._send(f.result())))
            return
        reply = concurrent.futures.Future()
        self._results[fid] = reply
        if len(self._results) > self._cache_size:
            # Forget the oldest answered calls; never one still running,
            # which a re-send would then run again.
            for old in [k for k, f in self._results.items() if f.done()][:len(self._results) - self._cache_size]:
                del self._results[old]
        reply.add_done_callback(lambda f: self._submit(self._send(f.result())))
        entry = self._handlers.get(m["method"])
        if entry is None:
            reply.set_result(_error(fid, -32601, "method not found: %s has no handler for %s" % (self.app, m["method"])))
            return
        fn, wants_ctx = entry
        ctx = CallContext(self, fid, m.get("meta"))
        self._running[fid] = ctx
        params = m.get("params")

        def run():
            if ctx.cancelled:  # cancelled while it waited for its turn
                raise CallCancelled()
            return _invoke(fn, wants_ctx, ctx, params)

        def done(f):
            self._running.pop(fid, None)
            try:
                result = f.result()
                json.dumps(result, allow_nan=False)  # a result that cannot be sent is the handler's error
                reply.set_result({"jsonrpc": "2.0", "id": fid, "result": result})
            except BaseException as e:  # the handler raised (even SystemExit): the host answers and goes on
                code = getattr(e, "code", None)
                reply.set_result(_error(fid, code if type(code) is int else -32000, str(e) or type(e).__name__,
                                        {"type": type(e).__name__, "traceback": traceback.format_exc()}))

        self.executor.submit(run).add_done_callback(done)

    # -- plumbing --------------------------------------------------------

    def _submit(self, coro):
        """Runs coro on the network thread's loop."""
        loop = self._loop
        if loop is None or loop.is_closed():
            coro.close()
            return
        asyncio.run_coroutine_threadsafe(coro, loop)

    async def _send(self, msg):
        await self._send_data(json.dumps(msg))

    async def _send_data(self, data):
        """Sends data when connected; while reconnecting it waits (the
        bridge keeps a replay caller's calls and replies meanwhile)."""
        while not self._closed:
            ws = self._ws
            if ws is not None and self._connected.is_set():  # the hello itself is sent by _session
                try:
                    await ws.send(data)
                    return
                except Exception:
                    pass
            await asyncio.sleep(0.05)

    def _request(self, method, params):
        return self._send({"jsonrpc": "2.0", "id": "py-%d" % next(self._ids), "method": method, "params": params})

    def _notify(self, method, params):
        self._submit(self._send({"jsonrpc": "2.0", "method": method, "params": params}))

    def _forget(self, cid):
        with self._lock:
            self._pending.pop(cid, None)



def _invoke(fn, wants_ctx, ctx, params):
    """Calls a handler with the params: keywords for an object, positional
    for a list; ctx too if it declares one."""
    kwargs = {"ctx": ctx} if wants_ctx else {}
    if isinstance(params, dict):
        return fn(**dict(params, **kwargs))
    if isinstance(params, list):
        return fn(*params, **kwargs)
    return fn(**kwargs)


def _error(fid, code, message, data=None):
    err = {"code": code, "message": message}
    if data is not None:
        err["data"] = data
    return {"jsonrpc": "2.0", "id": fid, "error": err}


def _params_of(fn):
    try:
        return inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return {}


def _matches(pattern, topic):
    if pattern.endswith(".*"):
        return topic.startswith(pattern[:-1])
    return pattern == topic or pattern == "*"


def _claim_instance(app):
    """The app's instance id, kept across restarts: the stored one for the
    first process of the app, "<id>-2", "-3", … for the others running at
    the same time (two Mayas), so that they never replace each other. A
    lock file names the process holding each; returns (instance, lock)."""
    path = _config.instance_file(app)
    base = None
    try:
        with open(path, "r", encoding="utf-8") as f:
            base = f.read().strip() or None
    except OSError:
        pass
    if base is None:
        base = "%s-%s" % (app, uuid.uuid4().hex[:8])
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8") as f:
                f.write(base)
        except OSError:
            return base + "-" + uuid.uuid4().hex[:4], None  # nowhere to keep it
    for n in range(1, 100):
        inst = base if n == 1 else "%s-%d" % (base, n)
        lock = path + ".%d.lock" % n
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except FileExistsError:
            if _lock_alive(lock):
                continue
            try:
                os.remove(lock)  # its process is gone
                fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
            except OSError:
                continue
        except OSError:
            return inst, None
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        return inst, lock
    return base + "-" + uuid.uuid4().hex[:4], None


def _lock_alive(lock):
    """Whether the process a lock file names still runs."""
    try:
        with open(lock, "r") as f:
            pid = int(f.read().strip() or 0)
    except (OSError, ValueError):
        return False
    if pid <= 0:
        return False
    if pid == os.getpid():
        return True  # another Bridge of this process holds it
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # it exists (not ours to signal), or this platform cannot tell
    return True


def _release_instance(lock):
    if lock:
        try:
            os.remove(lock)
        except OSError:
            pass
