// dccbridge panel SDK: connects a CEP/UXP panel, a browser page or any
// JavaScript host to the bridge over a websocket that speaks JSON-RPC 2.0
// both ways (docs/protocol.md), and takes care of reconnecting, re-registering,
// run-once replay by forwarded id, boot ids and queued calls.
//
// ES2017, no dependencies; it runs in Chromium 61 (CEP 9). The classic-script
// build bridge.classic.js is generated from this file (go generate in
// clients/js): never edit that one by hand.
//
//   const b = connectBridge({app: "aftereffects", label: "My panel", token});
//   b.handle("get_items", async (params, ctx) => { ... });
//   const r = await b.call("pipeline.publish", {path});

const DEFAULT_URL = 'ws://127.0.0.1:8098/ws';
const BACKOFF_BASE_MS = 250;
const BACKOFF_CAP_MS = 5000;
const CACHE_MAX = 1024; // finished replies kept for re-sent calls (at least 256)
const CACHE_TTL_MS = 10 * 60 * 1000; // and for at least this long, unless more than CACHE_MAX finish
const TIMEOUT_GRACE_MS = 5000; // a written call fails locally this long after the bridge should have answered
const BRIDGE_DEFAULT_TIMEOUT_MS = 10 * 60 * 1000; // the bridge's own call timeout when timeoutMs is not given
const HELLO_TIMEOUT_MS = 15000; // a connection whose hello gets no answer within this is dropped and retried

// Codes of the JSON-RPC errors the SDK makes itself.
const CODE_METHOD_NOT_FOUND = -32601;
const CODE_INTERNAL = -32603;
const CODE_HANDLER = -32000; // a handler threw an error without a numeric code
const CODE_TIMEOUT = -32002;
const CODE_CALLEE_GONE = -32004;
const CODE_CANCELLED = -32800;
const CODE_CLOSED = -32010; // close() was called

const STATE_CONNECTING = 'connecting';
const STATE_READY = 'ready';
const STATE_RECONNECTING = 'reconnecting';
const STATE_CLOSED = 'closed';

// randomHex returns n random bytes as hex, from crypto.getRandomValues where
// there is one, else from Math.random.
function randomHex(n) {
  const bytes = new Uint8Array(n);
  const c = typeof crypto !== 'undefined' ? crypto : null;
  if (c && typeof c.getRandomValues === 'function') {
    c.getRandomValues(bytes);
  } else {
    for (let i = 0; i < n; i++) bytes[i] = Math.floor(Math.random() * 256);
  }
  let s = '';
  for (let i = 0; i < n; i++) s += (bytes[i] < 16 ? '0' : '') + bytes[i].toString(16);
  return s;
}

function defer(fn) {
  setTimeout(fn, 0);
}

function report(where, err) {
  if (typeof console !== 'undefined' && console.error) console.error('dccbridge: ' + where + ':', err);
}

// rpcError makes the Error a call rejects with: message, code and data.
function rpcError(code, message, data) {
  const err = new Error(message);
  err.code = code;
  if (data !== undefined) err.data = data;
  return err;
}

// topicMatches reports whether an event topic matches a subscription: the
// same topic, or a prefix ending in ".*" (docs/protocol.md, Cancel, progress
// and events).
function topicMatches(pattern, topic) {
  if (pattern === topic) return true;
  if (pattern.length > 1 && pattern.slice(-2) === '.*') {
    return topic.indexOf(pattern.slice(0, -1)) === 0;
  }
  return pattern === '*';
}

// loadInstance returns the instance kept in localStorage for app, making and
// storing one when there is none; without localStorage it makes one.
function loadInstance(app) {
  const key = 'dccbridge.instance.' + app;
  let store = null;
  try {
    store = typeof localStorage !== 'undefined' ? localStorage : null;
  } catch (e) {
    store = null; // access can throw where storage is disabled
  }
  if (store) {
    try {
      const kept = store.getItem(key);
      if (kept) return kept;
      const made = 'i-' + randomHex(8);
      store.setItem(key, made);
      return made;
    } catch (e) {
      // fall through: storage full or refused
    }
  }
  return 'i-' + randomHex(8);
}

// Signal is a minimal abort signal (AbortController needs Chrome 66): it has
// aborted, reason, onabort and addEventListener/removeEventListener('abort').
class Signal {
  constructor() {
    this.aborted = false;
    this.reason = undefined;
    this.onabort = null;
    this._listeners = [];
  }

  addEventListener(type, fn) {
    if (type === 'abort' && typeof fn === 'function') this._listeners.push(fn);
  }

  removeEventListener(type, fn) {
    if (type !== 'abort') return;
    const i = this._listeners.indexOf(fn);
    if (i >= 0) this._listeners.splice(i, 1);
  }

  _abort(reason) {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    const ev = {type: 'abort', target: this};
    const fns = this._listeners.slice();
    if (typeof this.onabort === 'function') fns.unshift(this.onabort);
    for (let i = 0; i < fns.length; i++) {
      try {
        fns[i].call(this, ev);
      } catch (e) {
        report('abort listener', e);
      }
    }
  }
}

// Bridge is one connection to the bridge, kept up until close(). See
// bridge.d.ts for the API.
class Bridge {
  constructor(options) {
    const o = options || {};
    if (!o.app || typeof o.app !== 'string') throw new TypeError('connectBridge: the "app" option is required (e.g. "aftereffects")');
    this._url = o.url || DEFAULT_URL;
    this._app = o.app;
    this._kind = o.kind || 'host';
    this._label = o.label;
    this._version = o.version;
    this._token = o.token;
    this._replay = o.replay !== false;
    this._onState = typeof o.onState === 'function' ? o.onState : null;
    this._WebSocket = o.WebSocket || (typeof WebSocket !== 'undefined' ? WebSocket : null);
    if (!this._WebSocket) throw new TypeError('connectBridge: no WebSocket here; pass one as the "WebSocket" option');
    this._instance = o.instance || loadInstance(this._app);
    this._boot = 'b-' + randomHex(8);

    this._state = STATE_CONNECTING;
    this._ws = null; // the current socket
    this._ready = false; // the current socket's hello has been answered
    this._helloed = false; // a hello has been answered at least once
    this._helloMethods = null; // the methods the pending hello offered
    this._helloTimer = null; // drops a connection whose hello is not answered
    this._attempt = 0; // connection attempts since the last good hello
    this._timer = null; // the reconnect timer
    this._session = null;
    this._context = null;
    this._seq = 0;

    this._handlers = new Map(); // name → fn
    this._topics = new Map(); // topic → array of listeners
    this._pending = new Map(); // our request id → call record
    this._cancels = []; // ids of written calls cancelled while disconnected, told to the bridge at the next hello
    this._internal = new Map(); // our request id → callback(err, result), for bridge.* calls
    this._cache = new Map(); // JSON of a forwarded id → entry (running or finished)

    defer(() => this._connect());
  }

  get state() {
    return this._state;
  }

  get session() {
    return this._session;
  }

  get context() {
    return this._context;
  }

  get instance() {
    return this._instance;
  }

  get boot() {
    return this._boot;
  }

  get app() {
    return this._app;
  }

  // handle offers name: fn(params, ctx) answers calls to it.
  handle(name, fn) {
    if (!name || typeof name !== 'string') throw new TypeError('handle: a method name is required');
    const dot = name.indexOf('.');
    if (name.charAt(0) === '$' || dot === 0 || name.charAt(name.length - 1) === '.' ||
        (dot > 0 && name.slice(0, dot).toLowerCase() === 'bridge')) {
      // The bridge refuses the whole hello for one such name: fail here instead.
      throw new TypeError('handle: ' + JSON.stringify(name) + ' is reserved or malformed ($…, bridge.…, or an empty part around a dot)');
    }
    if (typeof fn !== 'function') throw new TypeError('handle: a function is required');
    const had = this._handlers.has(name);
    this._handlers.set(name, fn);
    if (!had && this._ready) this._internalCall('bridge.register', {methods: [name]});
    return () => {
      if (this._handlers.get(name) === fn) this.unhandle(name);
    };
  }

  // unhandle withdraws name.
  unhandle(name) {
    if (!this._handlers.delete(name)) return;
    if (this._ready) this._internalCall('bridge.unregister', {methods: [name]});
  }

  // call calls method (app.method or a bridge built-in) and resolves with
  // its result; it survives reconnects.
  call(method, params, options) {
    const o = options || {};
    return new Promise((resolve, reject) => {
      if (this._state === STATE_CLOSED) {
        reject(rpcError(CODE_CLOSED, 'dccbridge: the bridge connection was closed'));
        return;
      }
      const id = this._nextID();
      const msg = {jsonrpc: '2.0', id: id, method: method};
      if (params !== undefined) msg.params = params;
      const meta = {};
      let hasMeta = false;
      if (o.target !== undefined && o.target !== null) {
        meta.target = o.target;
        hasMeta = true;
      }
      if (typeof o.timeoutMs === 'number') {
        meta.timeout_ms = o.timeoutMs;
        hasMeta = true;
      }
      if (typeof o.waitMs === 'number') {
        meta.wait_ms = o.waitMs;
        hasMeta = true;
      }
      if (o.idempotent) {
        meta.idempotent = true;
        hasMeta = true;
      }
      if (hasMeta) msg.meta = meta;
      let frame;
      try {
        frame = JSON.stringify(msg);
      } catch (e) {
        reject(rpcError(CODE_INTERNAL, 'dccbridge: params cannot be encoded as JSON: ' + e.message));
        return;
      }
      const rec = {
        id: id,
        method: method,
        frame: frame,
        sent: false,
        resolve: resolve,
        reject: reject,
        onProgress: typeof o.onProgress === 'function' ? o.onProgress : null,
        timeoutMs: typeof o.timeoutMs === 'number' ? o.timeoutMs : null,
        timer: null,
        signal: o.signal || null,
        onAbort: null,
      };
      if (rec.signal) {
        if (rec.signal.aborted) {
          reject(rpcError(CODE_CANCELLED, 'cancelled'));
          return;
        }
        rec.onAbort = () => this._cancelCall(rec);
        rec.signal.addEventListener('abort', rec.onAbort);
      }
      this._pending.set(id, rec);
      if (this._ready) this._sendCall(rec);
    });
  }

  // notify sends a notification (no reply).
  notify(method, params) {
    const msg = {jsonrpc: '2.0', method: method};
    if (params !== undefined) msg.params = params;
    return this._ready && this._send(JSON.stringify(msg));
  }

  // on subscribes to topic ("x.y", or a prefix "x.*") and calls
  // fn(data, event) for each event; it returns the unsubscribe function.
  on(topic, fn) {
    if (!topic || typeof topic !== 'string') throw new TypeError('on: a topic is required');
    if (typeof fn !== 'function') throw new TypeError('on: a function is required');
    let list = this._topics.get(topic);
    if (!list) {
      list = [];
      this._topics.set(topic, list);
      if (this._ready) this._internalCall('bridge.subscribe', {topics: [topic]});
    }
    list.push(fn);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const cur = this._topics.get(topic);
      if (!cur) return;
      const i = cur.indexOf(fn);
      if (i >= 0) cur.splice(i, 1);
      if (cur.length === 0) {
        this._topics.delete(topic);
        if (this._ready) this._internalCall('bridge.unsubscribe', {topics: [topic]});
      }
    };
  }

  // close ends the connection for good; pending calls fail.
  close() {
    if (this._state === STATE_CLOSED) return;
    if (this._timer !== null) {
      clearTimeout(this._timer);
      this._timer = null;
    }
    this._stopHelloTimer();
    const ws = this._ws;
    this._ws = null;
    this._ready = false;
    if (ws) {
      try {
        ws.close(1000, 'closed by the panel');
      } catch (e) {
        // already closing
      }
    }
    const recs = Array.from(this._pending.values());
    for (let i = 0; i < recs.length; i++) {
      this._settle(recs[i], rpcError(CODE_CLOSED, 'dccbridge: the bridge connection was closed', {method: recs[i].method}));
    }
    this._internal.clear();
    this._cache.forEach((entry) => {
      if (entry.signal) entry.signal._abort(rpcError(CODE_CLOSED, 'dccbridge: the bridge connection was closed'));
    });
    this._setState(STATE_CLOSED, {});
  }

  // --- connection ---

  _nextID() {
    this._seq++;
    return this._boot + '-' + this._seq;
  }

  _setState(state, detail) {
    if (this._state === STATE_CLOSED) return;
    const changed = this._state !== state;
    this._state = state;
    if (changed && this._onState) {
      try {
        this._onState(state, detail || {});
      } catch (e) {
        report('onState', e);
      }
    }
  }

  _socketURL() {
    if (!this._token) return this._url;
    return this._url + (this._url.indexOf('?') >= 0 ? '&' : '?') + 'token=' + encodeURIComponent(this._token);
  }

  _connect() {
    this._timer = null;
    if (this._state === STATE_CLOSED) return;
    this._attempt++;
    let ws;
    try {
      ws = new this._WebSocket(this._socketURL());
    } catch (e) {
      this._retry({error: e});
      return;
    }
    this._ws = ws;
    this._ready = false;
    ws.onopen = () => {
      if (ws === this._ws) this._hello(ws);
    };
    ws.onmessage = (ev) => {
      if (ws === this._ws) this._receive(ev.data);
    };
    ws.onerror = () => {}; // onclose follows and says what happened
    ws.onclose = (ev) => {
      if (ws !== this._ws) return;
      this._dropped({code: ev && ev.code, reason: ev && ev.reason});
    };
  }

  // _dropped forgets the current socket and schedules the next attempt.
  _dropped(detail) {
    this._stopHelloTimer();
    this._ws = null;
    this._ready = false;
    this._helloMethods = null;
    this._internal.clear(); // bridge.* calls are remade after the next hello
    if (detail.code === 4001) {
      // Another connection of this same instance replaced this one (two pages
      // sharing an instance): reconnecting would take it back and start a
      // tug of war, so stop here and say so.
      report('connection replaced', 'another connection of ' + this._app + ' instance "' + this._instance + '" took over; giving up (pass a distinct "instance" per page)');
      this.close();
      return;
    }
    this._retry(detail);
  }

  _retry(detail) {
    if (this._state === STATE_CLOSED) return;
    this._setState(this._helloed ? STATE_RECONNECTING : STATE_CONNECTING, detail);
    // Full jitter: a uniform delay up to min(cap, base·2^n).
    const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * Math.pow(2, Math.min(this._attempt - 1, 16)));
    const delay = Math.floor(Math.random() * ceiling);
    this._timer = setTimeout(() => this._connect(), delay);
  }

  _send(frame) {
    const ws = this._ws;
    if (!ws || ws.readyState !== 1) return false;
    try {
      ws.send(frame);
      return true;
    } catch (e) {
      return false;
    }
  }

  // _sendCall writes a queued call; once written, a call fails locally a
  // grace period after the bridge should have answered (its timeoutMs, or
  // the bridge's default), so no promise waits forever for a lost reply.
  _sendCall(rec) {
    rec.sent = this._send(rec.frame);
    if (rec.sent && rec.timer === null) {
      const ms = rec.timeoutMs !== null ? rec.timeoutMs : BRIDGE_DEFAULT_TIMEOUT_MS;
      rec.timer = setTimeout(() => {
        this._settle(rec, rpcError(CODE_TIMEOUT, 'dccbridge: no reply to ' + rec.method + ' within ' + ms + ' ms', {method: rec.method}));
      }, ms + TIMEOUT_GRACE_MS);
    }
  }

  _hello(ws) {
    const methods = Array.from(this._handlers.keys());
    this._helloMethods = methods;
    const params = {
      app: this._app,
      kind: this._kind,
      instance: this._instance,
      boot: this._boot,
      methods: methods,
      replay: this._replay,
    };
    if (this._label !== undefined) params.label = this._label;
    if (this._version !== undefined) params.version = this._version;
    if (this._token) params.token = this._token;
    this._helloTimer = setTimeout(() => {
      this._helloTimer = null;
      if (ws !== this._ws || this._ready) return;
      report('hello', 'no answer within ' + HELLO_TIMEOUT_MS + ' ms; reconnecting');
      try {
        ws.close(4000, 'no hello answer'); // not 1000: that tells the bridge we left for good
      } catch (e) {
        // already closing
      }
      this._dropped({error: new Error('no answer to bridge.hello')});
    }, HELLO_TIMEOUT_MS);
    this._internalCall('bridge.hello', params, (err, result) => {
      if (ws !== this._ws) return;
      this._stopHelloTimer();
      if (err) {
        // A refused hello (a bad token, bad params): the bridge closes the
        // connection or we do, and the next attempt waits its backoff.
        report('hello refused', err.message);
        try {
          ws.close(1000, 'hello refused');
        } catch (e) {
          // already closing
        }
        this._dropped({error: err});
        return;
      }
      this._welcome(result || {});
    }, true);
  }

  _stopHelloTimer() {
    if (this._helloTimer !== null) {
      clearTimeout(this._helloTimer);
      this._helloTimer = null;
    }
  }

  // _welcome runs when the bridge has answered hello on the current socket.
  _welcome(result) {
    const again = this._helloed;
    this._ready = true;
    this._helloed = true;
    this._attempt = 0;
    this._session = result.session || null;
    if (result.context !== undefined) this._context = result.context;
    if (result.instance) this._instance = result.instance;
    // Handlers added or removed while hello was on its way.
    const offered = this._helloMethods || [];
    this._helloMethods = null;
    const added = [];
    this._handlers.forEach((fn, name) => {
      if (offered.indexOf(name) < 0) added.push(name);
    });
    const removed = offered.filter((name) => !this._handlers.has(name));
    if (added.length) this._internalCall('bridge.register', {methods: added});
    if (removed.length) this._internalCall('bridge.unregister', {methods: removed});
    if (this._topics.size) this._internalCall('bridge.subscribe', {topics: Array.from(this._topics.keys())});
    // Calls written to an earlier connection wait for the reply the bridge
    // holds for us; a bridge that did not resume this session (it restarted,
    // or the resume wait ran out) holds none, so they fail now.
    const recs = Array.from(this._pending.values());
    for (let i = 0; i < recs.length; i++) {
      const rec = recs[i];
      if (!rec.sent) continue;
      if (again && (result.resumed !== true || !this._replay)) {
        // Without replay the bridge cancelled our calls when we dropped.
        this._settle(rec, rpcError(CODE_CALLEE_GONE,
          'dccbridge: the connection dropped while ' + rec.method + ' was in flight and the bridge did not resume this session; it may have run',
          {method: rec.method, may_have_run: true}));
      }
    }
    for (let i = 0; i < recs.length; i++) {
      const rec = recs[i];
      if (!rec.sent && this._pending.has(rec.id)) this._sendCall(rec);
    }
    // Calls cancelled while we were away: the bridge kept them for us.
    const cancels = this._cancels;
    this._cancels = [];
    for (let i = 0; i < cancels.length; i++) this.notify('$/cancelRequest', {id: cancels[i]});
    this._setState(STATE_READY, {session: this._session, resumed: result.resumed === true, pending: result.pending || 0});
  }

  // _internalCall sends a bridge.* request whose reply goes to cb; early
  // sends it even before hello has been answered (hello itself).
  _internalCall(method, params, cb, early) {
    if (!early && !this._ready) return;
    const id = this._nextID();
    this._internal.set(id, cb || ((err) => {
      if (err) report(method, err.message);
    }));
    if (!this._send(JSON.stringify({jsonrpc: '2.0', id: id, method: method, params: params}))) this._internal.delete(id);
  }

  // --- incoming ---

  _receive(data) {
    let msg;
    try {
      msg = JSON.parse(data);
    } catch (e) {
      report('bad JSON from the bridge', e);
      return;
    }
    if (Array.isArray(msg)) {
      for (let i = 0; i < msg.length; i++) this._message(msg[i]);
    } else {
      this._message(msg);
    }
  }

  _message(msg) {
    if (!msg || typeof msg !== 'object') return;
    if (typeof msg.method === 'string') {
      this._request(msg);
      return;
    }
    if (msg.id === undefined || msg.id === null) return;
    const cb = this._internal.get(msg.id);
    if (cb) {
      this._internal.delete(msg.id);
      if (msg.error) cb(rpcError(msg.error.code, msg.error.message, msg.error.data));
      else cb(null, msg.result);
      return;
    }
    const rec = this._pending.get(msg.id);
    if (!rec) return;
    if (msg.error) {
      const e = msg.error;
      this._settle(rec, rpcError(typeof e.code === 'number' ? e.code : CODE_INTERNAL, String(e.message || 'error'), e.data), undefined, msg.meta);
    } else {
      this._settle(rec, null, msg.result, msg.meta);
    }
  }

  _settle(rec, err, result, meta) {
    if (this._pending.get(rec.id) !== rec) return;
    this._pending.delete(rec.id);
    if (rec.timer !== null) clearTimeout(rec.timer);
    if (rec.signal && rec.onAbort) rec.signal.removeEventListener('abort', rec.onAbort);
    if (err) {
      if (meta !== undefined) err.meta = meta;
      rec.reject(err);
    } else {
      rec.resolve(result);
    }
  }

  _cancelCall(rec) {
    if (this._pending.get(rec.id) !== rec) return;
    if (rec.sent && !this.notify('$/cancelRequest', {id: rec.id})) this._cancels.push(rec.id);
    this._settle(rec, rpcError(CODE_CANCELLED, 'cancelled', {method: rec.method}));
  }

  _request(msg) {
    const params = msg.params;
    switch (msg.method) {
      case '$/cancelRequest': {
        if (params && params.id !== undefined) {
          const entry = this._cache.get(JSON.stringify(params.id));
          if (entry && entry.signal) entry.signal._abort(rpcError(CODE_CANCELLED, 'cancelled by the caller'));
        }
        return;
      }
      case '$/progress': {
        const rec = params ? this._pending.get(params.id) : undefined;
        if (rec && rec.onProgress) {
          try {
            rec.onProgress(params.value);
          } catch (e) {
            report('onProgress', e);
          }
        }
        return;
      }
      case 'bridge.event': {
        if (params && typeof params.topic === 'string') this._event(params);
        return;
      }
    }
    if (msg.method === 'set_context' && params && typeof params === 'object' && !Array.isArray(params)) {
      this._context = params;
    }
    if (msg.id === undefined) {
      this._notification(msg);
      return;
    }
    this._run(msg);
  }

  _event(ev) {
    if (ev.topic === 'context.changed' && ev.data && ev.data.app === this._app.toLowerCase() &&
        (!ev.data.instance || ev.data.instance === this._instance) && ev.data.context !== undefined) {
      this._context = ev.data.context;
    }
    this._topics.forEach((list, pattern) => {
      if (!topicMatches(pattern, ev.topic)) return;
      const fns = list.slice();
      for (let i = 0; i < fns.length; i++) {
        try {
          fns[i](ev.data, ev);
        } catch (e) {
          report('event listener for ' + ev.topic, e);
        }
      }
    });
  }

  _notification(msg) {
    const fn = this._handlers.get(msg.method);
    if (!fn) return;
    const meta = msg.meta || {};
    const ctx = {
      id: null,
      meta: meta,
      caller: meta.caller || null,
      attempt: 1,
      signal: new Signal(),
      progress: () => {},
    };
    try {
      Promise.resolve(fn(msg.params, ctx)).catch((e) => report('handler ' + msg.method, e));
    } catch (e) {
      report('handler ' + msg.method, e);
    }
  }

  // _run answers a call, running its handler at most once per forwarded id.
  _run(msg) {
    const key = JSON.stringify(msg.id);
    const known = this._cache.get(key);
    if (known) {
      // A re-sent call: answer from the cache, or, while the handler still
      // runs, when it finishes (to whatever connection is current then).
      if (known.reply !== null) this._send(known.reply);
      return;
    }
    const fn = this._handlers.get(msg.method);
    if (!fn) {
      this._send(JSON.stringify({
        jsonrpc: '2.0',
        id: msg.id,
        error: {code: CODE_METHOD_NOT_FOUND, message: 'method not found: ' + msg.method + ' has no handler in this panel', data: {method: msg.method}},
      }));
      return;
    }
    const meta = msg.meta && typeof msg.meta === 'object' ? msg.meta : {};
    const entry = {reply: null, time: Date.now(), signal: new Signal()};
    this._cache.set(key, entry);
    this._trimCache();
    const id = msg.id;
    const ctx = {
      id: id,
      meta: meta,
      caller: meta.caller || null,
      attempt: typeof meta.attempt === 'number' ? meta.attempt : 1,
      signal: entry.signal,
      progress: (value) => {
        if (entry.reply !== null || !this._ready) return false;
        return this._send(JSON.stringify({jsonrpc: '2.0', method: '$/progress', params: {id: id, value: value === undefined ? null : value}}));
      },
    };
    let result;
    try {
      result = Promise.resolve(fn(msg.params, ctx));
    } catch (e) {
      result = Promise.reject(e);
    }
    result.then((value) => {
      let reply;
      try {
        reply = JSON.stringify({jsonrpc: '2.0', id: id, result: value === undefined ? null : value});
      } catch (e) {
        reply = errorReply(id, rpcError(CODE_INTERNAL, 'the result of ' + msg.method + ' cannot be encoded as JSON: ' + e.message));
      }
      this._finished(key, entry, reply);
    }, (err) => {
      this._finished(key, entry, errorReply(id, err));
    });
  }

  _finished(key, entry, reply) {
    entry.reply = reply;
    entry.signal = null;
    entry.time = Date.now();
    if (this._state === STATE_CLOSED) return;
    // Sent on the current connection if it is ready; a reply that cannot be
    // sent now goes out when the bridge re-sends the call after a reconnect.
    if (this._ready) this._send(reply);
    this._trimCache();
  }

  // _trimCache drops finished replies older than CACHE_TTL_MS, and the
  // oldest finished ones beyond CACHE_MAX; running calls stay.
  _trimCache() {
    const now = Date.now();
    let over = this._cache.size - CACHE_MAX;
    const drop = [];
    this._cache.forEach((entry, key) => {
      if (entry.reply === null) return;
      if (over > 0 || now - entry.time > CACHE_TTL_MS) {
        drop.push(key);
        over--;
      }
    });
    for (let i = 0; i < drop.length; i++) this._cache.delete(drop[i]);
  }
}

// errorReply encodes a thrown value as a JSON-RPC error reply: the code is
// err.code when it is an integer, else -32000; data is err.data.
function errorReply(id, err) {
  const code = err && typeof err.code === 'number' && Math.floor(err.code) === err.code ? err.code : CODE_HANDLER;
  let message = err && typeof err.message === 'string' ? err.message : String(err);
  if (!message) message = 'error';
  const error = {code: code, message: message};
  if (err && err.data !== undefined) error.data = err.data;
  try {
    return JSON.stringify({jsonrpc: '2.0', id: id, error: error});
  } catch (e) {
    return JSON.stringify({jsonrpc: '2.0', id: id, error: {code: code, message: message}});
  }
}

// connectBridge connects to the bridge and keeps the connection up until
// close(): see bridge.d.ts.
export function connectBridge(options) {
  return new Bridge(options);
}
