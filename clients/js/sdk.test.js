// Unit tests of bridge.js against a fake WebSocket (node --test sdk.test.js;
// the Go test TestSDKUnit runs them). The browser tests cover the same SDK
// against a real bridge in Chromium.
import {test} from 'node:test';
import assert from 'node:assert/strict';
import {connectBridge} from './bridge.js';

// fakeSockets returns a WebSocket constructor whose instances the test
// drives, and the list of sockets made so far.
function fakeSockets() {
  const all = [];
  class FakeSocket {
    constructor(url) {
      this.url = url;
      this.readyState = 0;
      this.sent = [];
      this.onopen = this.onmessage = this.onclose = this.onerror = null;
      all.push(this);
    }
    send(data) {
      if (this.readyState !== 1) throw new Error('InvalidStateError');
      this.sent.push(JSON.parse(data));
    }
    close(code) {
      this.readyState = 3;
      this.closedWith = code;
    }
    // The test's side.
    open() {
      this.readyState = 1;
      this.onopen({});
    }
    push(msg) {
      this.onmessage({data: JSON.stringify(msg)});
    }
    drop(code) {
      this.readyState = 3;
      this.onclose({code: code || 1006, reason: ''});
    }
    find(method) {
      return this.sent.filter((m) => m.method === method);
    }
    reply(id) {
      return this.sent.filter((m) => m.id === id && m.method === undefined);
    }
    // welcome opens the socket and answers its hello.
    welcome(result) {
      this.open();
      const hello = this.find('bridge.hello')[0];
      assert.ok(hello, 'no hello sent');
      this.push({jsonrpc: '2.0', id: hello.id, result: Object.assign({session: 's-1', resumed: false, pending: 0, context: {}}, result || {})});
      return hello;
    }
  }
  return {WebSocket: FakeSocket, all};
}

const tick = () => new Promise((resolve) => setTimeout(resolve, 0));

async function waitFor(cond, what) {
  const deadline = Date.now() + 5000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('timed out waiting for ' + what);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

// reconnect drops the current socket and waits for the next one.
async function reconnect(sockets, code) {
  const n = sockets.all.length;
  sockets.all[n - 1].drop(code);
  await waitFor(() => sockets.all.length > n, 'a new connection');
  return sockets.all[n];
}

function deferred() {
  let resolve;
  let reject;
  const promise = new Promise((a, b) => {
    resolve = a;
    reject = b;
  });
  return {promise, resolve, reject};
}

test('hello on the next tick with the handlers so far, token, later register and unregister', async () => {
  const s = fakeSockets();
  const states = [];
  const b = connectBridge({app: 'AE', url: 'ws://h/ws', token: 't k', instance: 'i1', label: 'L', version: '2', WebSocket: s.WebSocket,
    onState: (st) => states.push(st)});
  b.handle('a', () => 1);
  b.handle('b', () => 2);
  assert.equal(s.all.length, 0, 'connected before the next tick');
  await tick();
  assert.equal(s.all.length, 1);
  const ws = s.all[0];
  assert.equal(ws.url, 'ws://h/ws?token=t%20k');
  ws.open();
  const hello = ws.find('bridge.hello')[0];
  assert.deepEqual(Object.assign({}, hello.params, {boot: 'x'}),
    {app: 'AE', kind: 'host', instance: 'i1', boot: 'x', methods: ['a', 'b'], replay: true, label: 'L', version: '2', token: 't k'});
  assert.match(hello.params.boot, /^b-[0-9a-f]{16}$/);
  assert.match(hello.id, new RegExp('^' + hello.params.boot + '-\\d+$'));
  b.handle('c', () => 3); // while hello is on its way
  b.unhandle('b');
  assert.equal(ws.find('bridge.register').length, 0);
  ws.push({jsonrpc: '2.0', id: hello.id, result: {session: 's-9', resumed: false, pending: 0, context: {project: 'P'}}});
  assert.equal(b.state, 'ready');
  assert.equal(b.session, 's-9');
  assert.deepEqual(b.context, {project: 'P'});
  assert.deepEqual(ws.find('bridge.register').map((m) => m.params), [{methods: ['c']}]);
  assert.deepEqual(ws.find('bridge.unregister').map((m) => m.params), [{methods: ['b']}]);
  b.handle('d', () => 4);
  b.unhandle('a');
  assert.deepEqual(ws.find('bridge.register').map((m) => m.params), [{methods: ['c']}, {methods: ['d']}]);
  assert.deepEqual(ws.find('bridge.unregister').map((m) => m.params), [{methods: ['b']}, {methods: ['a']}]);
  // After a reconnect: hello again, same instance and boot, every handler.
  const ws2 = await reconnect(s);
  const hello2 = ws2.welcome({resumed: true});
  assert.equal(hello2.params.boot, hello.params.boot);
  assert.equal(hello2.params.instance, 'i1');
  assert.deepEqual(hello2.params.methods, ['c', 'd']);
  assert.deepEqual(states, ['ready', 'reconnecting', 'ready']);
  b.close();
  assert.equal(b.state, 'closed');
});

test('a forwarded id runs its handler once: re-sent while running, after finishing, after a drop', async () => {
  const s = fakeSockets();
  const b = connectBridge({app: 'ae', instance: 'i1', WebSocket: s.WebSocket});
  let runs = 0;
  let gate = deferred();
  b.handle('save', (params, ctx) => {
    runs++;
    assert.equal(ctx.id, runs === 1 ? 'c-1' : 'c-2');
    assert.deepEqual(ctx.caller, {app: 'pipeline', instance: 'p1'});
    return gate.promise;
  });
  await tick();
  const ws = s.all[0];
  ws.welcome();
  const req = {jsonrpc: '2.0', id: 'c-1', method: 'save', params: {}, meta: {caller: {app: 'pipeline', instance: 'p1'}, attempt: 1}};
  ws.push(req);
  assert.equal(runs, 1);
  // The connection drops while the handler runs; the bridge re-sends.
  const ws2 = await reconnect(s);
  ws2.welcome({resumed: true, pending: 1});
  ws2.push(Object.assign({}, req, {meta: {attempt: 2}}));
  assert.equal(runs, 1);
  assert.equal(ws2.reply('c-1').length, 0, 'replied before the handler finished');
  gate.resolve({saved: true});
  await waitFor(() => ws2.reply('c-1').length === 1, 'the reply');
  assert.deepEqual(ws2.reply('c-1')[0], {jsonrpc: '2.0', id: 'c-1', result: {saved: true}});
  assert.equal(ws.reply('c-1').length, 0, 'replied on the dead connection');
  // Re-sent after it finished: answered from the cache.
  ws2.push(req);
  assert.equal(ws2.reply('c-1').length, 2);
  assert.equal(runs, 1);

  // Finished while disconnected: nothing to send then; the re-sent call gets it.
  gate = deferred();
  ws2.push(Object.assign({}, req, {id: 'c-2'}));
  const ws3 = await reconnect(s);
  gate.resolve('late');
  await tick();
  ws3.welcome({resumed: true, pending: 1});
  assert.equal(ws3.reply('c-2').length, 0);
  ws3.push(Object.assign({}, req, {id: 'c-2'}));
  assert.deepEqual(ws3.reply('c-2'), [{jsonrpc: '2.0', id: 'c-2', result: 'late'}]);
  assert.equal(runs, 2);
  b.close();
});

test('handler errors, unknown methods, undefined results, notifications', async () => {
  const s = fakeSockets();
  const b = connectBridge({app: 'ae', instance: 'i1', WebSocket: s.WebSocket});
  b.handle('coded', () => {
    const e = new Error('coded failure');
    e.code = 4000;
    e.data = {k: 1};
    throw e;
  });
  b.handle('plain', async () => {
    throw new Error('plain failure');
  });
  b.handle('fractional', () => {
    const e = new Error('x');
    e.code = 1.5;
    throw e;
  });
  b.handle('string', () => Promise.reject('just a string'));
  b.handle('nothing', () => undefined);
  let notified = null;
  b.handle('note', (params, ctx) => {
    notified = [params, ctx.id];
  });
  await tick();
  const ws = s.all[0];
  ws.welcome();
  for (const [id, method] of [[1, 'coded'], [2, 'plain'], [3, 'fractional'], [4, 'string'], [5, 'nothing'], ['u', 'nope']]) {
    ws.push({jsonrpc: '2.0', id, method});
  }
  ws.push({jsonrpc: '2.0', method: 'note', params: [1]});
  await waitFor(() => ws.sent.filter((m) => m.method === undefined).length >= 6, 'six replies');
  const by = (id) => ws.reply(id)[0];
  assert.deepEqual(by(1).error, {code: 4000, message: 'coded failure', data: {k: 1}});
  assert.deepEqual(by(2).error, {code: -32000, message: 'plain failure'});
  assert.deepEqual(by(3).error, {code: -32000, message: 'x'});
  assert.deepEqual(by(4).error, {code: -32000, message: 'just a string'});
  assert.deepEqual(by(5), {jsonrpc: '2.0', id: 5, result: null});
  assert.equal(by('u').error.code, -32601);
  assert.deepEqual(notified, [[1], null]);
  b.close();
});

test('cancel aborts ctx.signal; progress goes out with the forwarded id', async () => {
  const s = fakeSockets();
  const b = connectBridge({app: 'ae', instance: 'i1', WebSocket: s.WebSocket});
  let ctx;
  const seen = [];
  b.handle('render', (params, c) => {
    ctx = c;
    c.signal.onabort = () => seen.push('onabort');
    c.signal.addEventListener('abort', (ev) => seen.push('listener:' + (ev.target === c.signal)));
    return new Promise(() => {});
  });
  await tick();
  const ws = s.all[0];
  ws.welcome();
  ws.push({jsonrpc: '2.0', id: 'c-9', method: 'render', meta: {attempt: 3}});
  assert.equal(ctx.attempt, 3);
  assert.equal(ctx.caller, null);
  assert.equal(ctx.progress({pct: 10}), true);
  assert.deepEqual(ws.find('$/progress'), [{jsonrpc: '2.0', method: '$/progress', params: {id: 'c-9', value: {pct: 10}}}]);
  assert.equal(ctx.signal.aborted, false);
  ws.push({jsonrpc: '2.0', method: '$/cancelRequest', params: {id: 'unknown'}});
  assert.equal(ctx.signal.aborted, false);
  ws.push({jsonrpc: '2.0', method: '$/cancelRequest', params: {id: 'c-9'}});
  assert.equal(ctx.signal.aborted, true);
  assert.equal(ctx.signal.reason.code, -32800);
  assert.deepEqual(seen, ['onabort', 'listener:true']);
  b.close();
});

test('calls: queued until hello, replies, errors, progress, held across a resume, failed without one', async () => {
  const s = fakeSockets();
  const b = connectBridge({app: 'ae', instance: 'i1', WebSocket: s.WebSocket});
  const progress = [];
  const p1 = b.call('pipeline.publish', {a: 1}, {target: 'p1', timeoutMs: 60000, waitMs: 5000, idempotent: true, onProgress: (v) => progress.push(v)});
  await tick();
  const ws = s.all[0];
  ws.open();
  assert.equal(ws.find('pipeline.publish').length, 0, 'sent before hello was answered');
  ws.welcome();
  const [req] = ws.find('pipeline.publish');
  assert.deepEqual(req.meta, {target: 'p1', timeout_ms: 60000, wait_ms: 5000, idempotent: true});
  assert.deepEqual(req.params, {a: 1});
  ws.push({jsonrpc: '2.0', method: '$/progress', params: {id: req.id, value: 0.5}});
  assert.deepEqual(progress, [0.5]);
  ws.push({jsonrpc: '2.0', id: req.id, result: {ok: 1}, meta: {app: 'pipeline'}});
  assert.deepEqual(await p1, {ok: 1});

  const p2 = b.call('pipeline.fail');
  const [req2] = ws.find('pipeline.fail');
  assert.equal(req2.params, undefined);
  assert.equal(req2.meta, undefined);
  ws.push({jsonrpc: '2.0', id: req2.id, error: {code: -32001, message: 'no session', data: {app: 'pipeline'}}, meta: {app: 'x'}});
  await assert.rejects(p2, (e) => e instanceof Error && e.code === -32001 && e.message === 'no session' && e.data.app === 'pipeline' && e.meta.app === 'x');

  // Written, then the connection drops: the bridge resumes the session and
  // delivers the reply it held.
  const p3 = b.call('pipeline.slow');
  const [req3] = ws.find('pipeline.slow');
  const ws2 = await reconnect(s);
  const p4 = b.call('pipeline.later'); // not written: waits for the hello
  ws2.welcome({resumed: true});
  assert.equal(ws2.find('pipeline.slow').length, 0, 'a written call was sent again');
  assert.equal(ws2.find('pipeline.later').length, 1);
  ws2.push({jsonrpc: '2.0', id: req3.id, result: 'held'});
  assert.equal(await p3, 'held');
  ws2.push({jsonrpc: '2.0', id: ws2.find('pipeline.later')[0].id, result: 'later'});
  assert.equal(await p4, 'later');

  // Written, then a hello the bridge did not resume (it restarted): the
  // call may have run, and no reply will come.
  const p5 = b.call('pipeline.lost');
  const ws3 = await reconnect(s);
  ws3.welcome({resumed: false});
  await assert.rejects(p5, (e) => e.code === -32004 && e.data.may_have_run === true);

  // Ids are unique per load.
  const ids = [].concat(ws.sent, ws2.sent, ws3.sent).filter((m) => m.id !== undefined).map((m) => m.id);
  assert.equal(new Set(ids).size, ids.length);

  // close() fails what is pending and stops reconnecting.
  const p6 = b.call('pipeline.never');
  b.close();
  await assert.rejects(p6, (e) => e.code === -32010);
  await assert.rejects(b.call('pipeline.after'), (e) => e.code === -32010);
  const n = s.all.length;
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.equal(s.all.length, n, 'reconnected after close()');
});

test('a call with a signal is cancelled at the bridge', async () => {
  const s = fakeSockets();
  const b = connectBridge({app: 'ae', instance: 'i1', WebSocket: s.WebSocket});
  await tick();
  const ws = s.all[0];
  ws.welcome();
  const listeners = [];
  const signal = {aborted: false, addEventListener: (t, fn) => listeners.push(fn), removeEventListener: () => {}};
  const p = b.call('pipeline.slow', null, {signal});
  const [req] = ws.find('pipeline.slow');
  signal.aborted = true;
  listeners.forEach((fn) => fn());
  await assert.rejects(p, (e) => e.code === -32800);
  assert.deepEqual(ws.find('$/cancelRequest').map((m) => m.params), [{id: req.id}]);
  b.close();
});

test('events: subscribe when ready, again after a reconnect, match prefixes, unsubscribe', async () => {
  const s = fakeSockets();
  const b = connectBridge({app: 'ae', instance: 'i1', WebSocket: s.WebSocket});
  const got = [];
  const off = b.on('session.*', (data, ev) => got.push(['s', ev.topic, data]));
  b.on('context.changed', (data) => got.push(['c', data.app]));
  await tick();
  const ws = s.all[0];
  ws.welcome();
  assert.deepEqual(ws.find('bridge.subscribe').map((m) => m.params), [{topics: ['session.*', 'context.changed']}]);
  ws.push({jsonrpc: '2.0', method: 'bridge.event', params: {topic: 'session.joined', data: {n: 1}, at: 'now'}});
  ws.push({jsonrpc: '2.0', method: 'bridge.event', params: {topic: 'sessions', data: {}, at: 'now'}});
  ws.push({jsonrpc: '2.0', method: 'bridge.event', params: {topic: 'context.changed', data: {app: 'ae', context: {task: 't'}}, at: 'now'}});
  assert.deepEqual(got, [['s', 'session.joined', {n: 1}], ['c', 'ae']]);
  assert.deepEqual(b.context, {task: 't'});
  b.on('late.one', () => {});
  assert.deepEqual(ws.find('bridge.subscribe').map((m) => m.params)[1], {topics: ['late.one']});
  const ws2 = await reconnect(s);
  ws2.welcome({resumed: true});
  assert.deepEqual(ws2.find('bridge.subscribe').map((m) => m.params), [{topics: ['session.*', 'context.changed', 'late.one']}]);
  off();
  off();
  assert.deepEqual(ws2.find('bridge.unsubscribe').map((m) => m.params), [{topics: ['session.*']}]);
  b.close();
});

test('set_context updates context; a replaced connection stops; a refused hello retries', async () => {
  const s = fakeSockets();
  const b = connectBridge({app: 'ae', instance: 'i1', WebSocket: s.WebSocket});
  b.handle('set_context', () => true);
  await tick();
  let ws = s.all[0];
  ws.open();
  const hello = ws.find('bridge.hello')[0];
  ws.push({jsonrpc: '2.0', id: hello.id, error: {code: -32005, message: 'unauthorized'}});
  assert.notEqual(b.state, 'ready');
  await waitFor(() => s.all.length === 2, 'a retry after a refused hello');
  ws = s.all[1];
  ws.welcome({context: null});
  ws.push({jsonrpc: '2.0', id: 'c-1', method: 'set_context', params: {project: 'Q'}});
  assert.deepEqual(b.context, {project: 'Q'});
  const errors = console.error;
  console.error = () => {};
  try {
    ws.drop(4001);
  } finally {
    console.error = errors;
  }
  assert.equal(b.state, 'closed');
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.equal(s.all.length, 2, 'reconnected after being replaced');
});

test('instance kept in localStorage per app; a new boot per connectBridge', async () => {
  const store = new Map();
  global.localStorage = {getItem: (k) => (store.has(k) ? store.get(k) : null), setItem: (k, v) => store.set(k, String(v))};
  try {
    const s = fakeSockets();
    const b1 = connectBridge({app: 'ae', WebSocket: s.WebSocket});
    const b2 = connectBridge({app: 'ae', WebSocket: s.WebSocket});
    const b3 = connectBridge({app: 'ps', WebSocket: s.WebSocket});
    assert.match(b1.instance, /^i-[0-9a-f]{16}$/);
    assert.equal(b2.instance, b1.instance);
    assert.notEqual(b3.instance, b1.instance);
    assert.equal(store.get('dccbridge.instance.ae'), b1.instance);
    assert.notEqual(b1.boot, b2.boot);
    assert.throws(() => connectBridge({WebSocket: s.WebSocket}), TypeError);
    [b1, b2, b3].forEach((b) => b.close());
  } finally {
    delete global.localStorage;
  }
});

test('a cancel made while disconnected reaches the bridge after the next hello', async () => {
  const s = fakeSockets();
  const b = connectBridge({app: 'ae', instance: 'i1', WebSocket: s.WebSocket});
  await tick();
  s.all[0].welcome();
  const listeners = [];
  const signal = {aborted: false, addEventListener: (t, fn) => listeners.push(fn), removeEventListener: () => {}};
  const p = b.call('pipeline.slow', null, {signal});
  const [req] = s.all[0].find('pipeline.slow');
  s.all[0].drop();
  signal.aborted = true;
  listeners.forEach((fn) => fn());
  await assert.rejects(p, (e) => e.code === -32800);
  await waitFor(() => s.all.length > 1, 'a new connection');
  const ws = s.all[1];
  ws.welcome({resumed: true});
  await waitFor(() => ws.find('$/cancelRequest').length === 1, 'the cancel');
  assert.deepEqual(ws.find('$/cancelRequest')[0].params, {id: req.id});
  b.close();
});

test('without replay, calls in flight when the connection drops fail at the next hello', async () => {
  const s = fakeSockets();
  const b = connectBridge({app: 'ae', instance: 'i1', replay: false, WebSocket: s.WebSocket});
  await tick();
  s.all[0].welcome();
  const p = b.call('pipeline.slow', null);
  const ws = await reconnect(s);
  ws.welcome({resumed: true}); // the same boot, but the bridge cancelled our calls when we dropped
  await assert.rejects(p, (e) => e.code === -32004 && e.data.may_have_run === true);
  b.close();
});

test('handle refuses names the bridge would refuse (they would break every later hello)', () => {
  const s = fakeSockets();
  const b = connectBridge({app: 'ae', WebSocket: s.WebSocket});
  for (const name of ['$x', 'bridge.foo', 'Bridge.foo', '.x', 'x.']) {
    assert.throws(() => b.handle(name, () => 1), TypeError, name);
  }
  b.handle('AfterEffects.publish_route', () => 1); // a full name in another namespace is fine
  b.close();
});
