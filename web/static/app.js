// dccbridge status page. Vanilla JavaScript, no dependencies, nothing
// fetched from elsewhere.
//
// Data: /api/status, /api/sessions and /api/calls are polled every second;
// /api/events is a Server-Sent Events stream (the last 200 events, then each
// new one). Both come back by themselves when the bridge restarts. When the
// bridge's token is in force, the page asks for it once, keeps it in
// sessionStorage (this tab only) and sends it as Authorization: Bearer, or
// as ?token= on the EventSource URL, which cannot carry headers.
//
// Everything peers chose (apps, labels, contexts, methods) is shown with
// textContent, never parsed as HTML.
(function () {
  'use strict';

  var TOKEN_KEY = 'dccbridge.token';
  var POLL_MS = 1000;
  var FETCH_TIMEOUT_MS = 4000;
  var LOG_MAX = 200;

  var st = {
    token: null,
    askingToken: false,
    status: null,
    sessions: [],
    calls: [],
    offset: 0, // server clock minus ours, in ms
    online: false,
    lastOK: 0,
    pollTimer: 0,
    es: null,
    esOpen: false,
    esTimer: 0,
    boot: null,
    lastSeq: 0,
    events: [], // oldest first
    expanded: Object.create(null), // app/instance → methods shown (kept across reconnects)
    filter: '',
    onlyFailed: false, // the errors card shows only the failed calls in the log
  };
  window.dccStatus = st; // for a look from the console

  var $ = function (id) { return document.getElementById(id); };

  // ---- token ----

  function initToken() {
    var url = new URL(location.href);
    var fromURL = url.searchParams.get('token');
    if (fromURL) {
      // Opened as /?token=…: keep it for this tab and take it off the URL
      // (and so out of the history).
      url.searchParams.delete('token');
      history.replaceState(null, '', url.pathname + url.search + url.hash);
      st.token = fromURL;
      store(fromURL);
      return;
    }
    try { st.token = sessionStorage.getItem(TOKEN_KEY); } catch (e) { st.token = null; }
  }

  function store(token) {
    try {
      if (token) sessionStorage.setItem(TOKEN_KEY, token); else sessionStorage.removeItem(TOKEN_KEY);
    } catch (e) { /* storage may be off; the token then lasts until a reload */ }
  }

  function askToken(wrong) {
    if (st.askingToken) return;
    st.askingToken = true;
    stopEvents();
    var why = wrong
      ? 'The bridge refused the token this page had (it may have restarted with another). '
      : "The bridge's token is in force. ";
    $('token-why').textContent = why + 'The page keeps it for this tab only.';
    // Where the token is depends on how the bridge was started: it says.
    fetch('/api/token-hint').then(function (r) { return r.json(); }).then(function (h) {
      $('token-why').textContent = why + 'Its token: ' + h.hint + '. The page keeps it for this tab only.';
    }, function () { /* the bridge is gone: the link says so */ });
    $('token-box').hidden = false;
    ['sessions-empty', 'calls-empty', 'log-empty'].forEach(function (id) { setText(id, waiting()); });
    setLink('token', 'token needed');
    $('token-input').focus();
  }

  function tokenGiven(ev) {
    ev.preventDefault();
    var t = $('token-input').value.trim();
    if (!t) return;
    $('token-input').value = '';
    st.token = t;
    store(t);
    st.askingToken = false;
    $('token-box').hidden = true;
    setLink('connecting', 'connecting…');
    schedulePoll(0);
  }

  // ---- data ----

  function api(path) {
    // A fetch the bridge does not answer is given up after a while (old
    // browsers without AbortController rely on the connection failing).
    var ctl = typeof AbortController === 'function' ? new AbortController() : null;
    var timer = setTimeout(function () { if (ctl) ctl.abort(); }, FETCH_TIMEOUT_MS);
    var headers = {};
    if (st.token) headers.Authorization = 'Bearer ' + st.token;
    return fetch(path, {headers: headers, cache: 'no-store', signal: ctl ? ctl.signal : undefined}).then(function (resp) {
      clearTimeout(timer);
      if (resp.status === 401) {
        var err = new Error('unauthorized');
        err.unauthorized = true;
        throw err;
      }
      if (!resp.ok) throw new Error(path + ': HTTP ' + resp.status);
      return resp.json();
    }, function (err) {
      clearTimeout(timer);
      throw err;
    });
  }

  function schedulePoll(ms) {
    clearTimeout(st.pollTimer);
    st.pollTimer = setTimeout(poll, ms);
  }

  function poll() {
    if (st.askingToken) return;
    Promise.all([api('/api/status'), api('/api/sessions'), api('/api/calls')]).then(function (r) {
      st.status = r[0];
      st.sessions = r[1] || [];
      st.calls = r[2] || [];
      st.offset = Date.parse(r[0].now) - Date.now();
      st.lastOK = Date.now();
      st.online = true;
      render();
      ensureEvents();
      schedulePoll(POLL_MS);
    }, function (err) {
      if (err && err.unauthorized) {
        var had = !!st.token;
        st.token = null;
        store(null);
        askToken(had);
        return;
      }
      st.online = false;
      renderLink();
      schedulePoll(POLL_MS);
    });
  }

  // ---- live events ----

  function ensureEvents() {
    if (st.es || st.esTimer || st.askingToken) return;
    var url = '/api/events' + (st.token ? '?token=' + encodeURIComponent(st.token) : '');
    var es = new EventSource(url);
    st.es = es;
    es.addEventListener('hello', function (e) {
      var h = JSON.parse(e.data);
      if (st.boot && h.boot !== st.boot) {
        // A new bridge: its events are numbered from 1 again.
        st.lastSeq = 0;
        addEvent({topic: 'local.restarted', at: new Date(Date.now() + st.offset).toISOString(), data: {}}, true);
      }
      st.boot = h.boot;
      st.esOpen = true;
      renderLink();
    });
    es.onmessage = function (e) {
      var ev = JSON.parse(e.data);
      if (ev.seq <= st.lastSeq) return; // replayed, already shown
      st.lastSeq = ev.seq;
      addEvent(ev, false);
    };
    es.onerror = function () {
      // Reconnect ourselves (EventSource gives up on an HTTP error and
      // keeps its URL, token included).
      stopEvents();
      renderLink();
      st.esTimer = setTimeout(function () { st.esTimer = 0; if (st.online) ensureEvents(); }, 1000);
    };
  }

  function stopEvents() {
    if (st.es) st.es.close();
    st.es = null;
    st.esOpen = false;
  }

  var pendingLog = 0;
  function addEvent(ev, local) {
    ev.local = local;
    st.events.push(ev);
    if (st.events.length > LOG_MAX) st.events.splice(0, st.events.length - LOG_MAX);
    // Replays come in bursts: draw once for the lot.
    if (!pendingLog) pendingLog = setTimeout(function () { pendingLog = 0; renderLog(); }, 50);
  }

  // ---- formatting ----

  function now() { return Date.now() + st.offset; }

  function pad(n) { return n < 10 ? '0' + n : '' + n; }

  function dur(ms) {
    if (!(ms >= 0)) ms = 0;
    var s = Math.floor(ms / 1000);
    if (s < 60) return s + ' s';
    var m = Math.floor(s / 60);
    if (m < 60) return m + ' min ' + pad(s % 60) + ' s';
    var h = Math.floor(m / 60);
    if (h < 24) return h + ' h ' + pad(m % 60) + ' min';
    return Math.floor(h / 24) + ' d ' + (h % 24) + ' h';
  }

  function msText(ms) { return ms < 1000 ? Math.round(ms) + ' ms' : dur(ms); }

  function since(iso) {
    var t = Date.parse(iso);
    if (!t || t < 0) return '–';
    return dur(now() - t);
  }

  function ago(iso) {
    var t = Date.parse(iso);
    if (!t || t <= 0) return '–';
    var ms = now() - t;
    return ms < 1000 ? 'now' : dur(ms) + ' ago';
  }

  function rtt(ms) {
    if (!ms) return '–';
    return (ms < 10 ? ms.toFixed(1) : Math.round(ms)) + ' ms';
  }

  function clock(iso) {
    var d = new Date(iso);
    return pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds());
  }

  function ctxText(ctx) {
    if (!ctx || typeof ctx !== 'object') return '';
    return Object.keys(ctx).map(function (k) { return k + '=' + val(ctx[k]); }).join(' · ');
  }

  function val(v) { return typeof v === 'string' ? v : JSON.stringify(v); }

  function who(app, instance) { return instance ? app + '/' + instance : app; }

  // ---- DOM helpers ----

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function cell(tr, text, cls) {
    var td = el('td', cls, text);
    tr.appendChild(td);
    return td;
  }

  function pill(state) { return el('span', 'pill ' + state, state); }

  function setText(id, text) {
    var e = $(id);
    if (e.textContent !== String(text)) e.textContent = String(text);
  }

  // ---- rendering ----

  function setLink(state, text) {
    var l = $('link');
    l.dataset.state = state;
    setText('link-text', text);
    document.body.classList.toggle('offline', state === 'offline');
  }

  function renderLink() {
    if (st.askingToken) return;
    if (!st.online) {
      setLink('offline', st.lastOK ? 'bridge unreachable · retrying' : 'connecting…');
    } else if (!st.esOpen) {
      setLink('connecting', 'live · events reconnecting');
    } else {
      setLink('live', 'live');
    }
  }

  function render() {
    var s = st.status;
    setText('version', s.version);
    setText('address', s.address);
    setText('uptime', dur(now() - Date.parse(s.started)));
    setText('token-state', s.token_in_force ? 'in force' : 'not required');
    var t = s.totals;
    setText('t-sessions', t.sessions);
    setText('t-inflight', t.in_flight);
    setText('t-calls', t.calls);
    setText('t-errors', t.errors);
    setText('t-resumes', t.resumes);
    $('t-errors').classList.toggle('nonzero', t.errors > 0);
    renderSessions();
    renderCalls();
    renderFilter();
    renderLink();
  }

  function renderSessions() {
    var body = document.createElement('tbody');
    var seen = Object.create(null);
    st.sessions.forEach(function (x) {
      var key = x.app + '/' + x.instance;
      seen[key] = true;
      var tr = el('tr', x.state);
      tr.dataset.app = x.app;
      tr.dataset.instance = x.instance;
      tr.dataset.state = x.state;
      tr.dataset.session = x.session;
      cell(tr, x.app, 'strong');
      cell(tr, x.kind, 'muted');
      cell(tr, x.instance, 'mono');
      cell(tr, x.label || x.app_label, 'label'); // the catalog's app name when the session gave no label
      cell(tr, x.version, 'mono');
      cell(tr, '', 'state').appendChild(pill(x.state));
      cell(tr, since(x.connected_at), 'n');
      cell(tr, ago(x.last_seen), 'n');
      cell(tr, rtt(x.rtt_ms), 'n');
      cell(tr, x.in_flight, 'n');
      cell(tr, x.parked, 'n' + (x.parked ? ' strong' : ''));
      var ctd = cell(tr, '', 'wrap context');
      var ctx = x.context && typeof x.context === 'object' ? x.context : null;
      if (ctx && Object.keys(ctx).length) {
        Object.keys(ctx).forEach(function (k) {
          var span = el('span', 'ctx');
          span.appendChild(el('b', null, k + ' '));
          span.appendChild(document.createTextNode(val(ctx[k])));
          ctd.appendChild(span);
        });
      } else {
        ctd.textContent = '–';
        ctd.classList.add('muted');
      }
      var methods = x.methods || [];
      var open = !!st.expanded[key];
      var mtd = cell(tr, '', 'methods-toggle');
      if (methods.length) {
        var b = el('button', 'toggle', (open ? '▾ ' : '▸ ') + methods.length);
        b.type = 'button';
        b.title = open ? 'hide methods' : 'show methods';
        b.setAttribute('aria-expanded', open ? 'true' : 'false');
        b.addEventListener('click', function () {
          st.expanded[key] = !st.expanded[key];
          renderSessions();
        });
        mtd.appendChild(b);
      } else {
        mtd.textContent = 'none';
        mtd.classList.add('muted');
      }
      body.appendChild(tr);
      if (open && methods.length) {
        var mr = el('tr', 'methods');
        mr.dataset.session = x.session;
        var td = el('td');
        td.colSpan = 13;
        methods.forEach(function (m) { td.appendChild(el('span', 'chip', m)); });
        mr.appendChild(td);
        body.appendChild(mr);
      }
    });
    Object.keys(st.expanded).forEach(function (k) { if (!seen[k]) delete st.expanded[k]; });
    var table = $('sessions');
    table.replaceChild(body, table.tBodies[0]);
    setText('sessions-count', st.sessions.length || '');
    setText('sessions-empty', st.status ? 'No panel or tool is connected.' : waiting());
    $('sessions-empty').hidden = st.sessions.length > 0;
  }

  function renderCalls() {
    var body = document.createElement('tbody');
    st.calls.forEach(function (c) {
      var tr = el('tr', c.state);
      tr.dataset.method = c.method;
      tr.dataset.state = c.state;
      tr.dataset.id = c.id;
      cell(tr, c.method, 'mono');
      cell(tr, c.caller, 'mono');
      var target = c.target || 'any';
      cell(tr, target + ' → ' + (c.callee || '…'), 'mono');
      cell(tr, dur(c.age_ms), 'n');
      cell(tr, c.attempt, 'n');
      cell(tr, '', 'state').appendChild(pill(c.state));
      cell(tr, c.progress === undefined ? '' : short(JSON.stringify(c.progress), 80), 'mono progress');
      body.appendChild(tr);
    });
    var table = $('calls');
    table.replaceChild(body, table.tBodies[0]);
    setText('calls-count', st.calls.length || '');
    setText('calls-empty', st.status ? 'No call in flight.' : waiting());
    $('calls-empty').hidden = st.calls.length > 0;
  }

  // waiting says what the page waits for before the data came.
  function waiting() {
    return st.askingToken ? 'Waiting for the token (above)…' : 'Loading…';
  }

  function plural(n, word) { return n + ' ' + word + (n === 1 ? '' : 's'); }

  function short(s, n) { return s.length > n ? s.slice(0, n - 1) + '…' : s; }

  // eventApps names the apps an event is about: its app, and for a failed
  // call its caller's.
  function eventApps(ev) {
    var d = ev.data || {};
    var apps = [];
    if (typeof d.app === 'string' && d.app) apps.push(d.app);
    if (d.caller && typeof d.caller === 'object' && d.caller.app && apps.indexOf(d.caller.app) < 0) apps.push(d.caller.app);
    return apps;
  }

  function describe(ev) {
    var d = ev.data || {};
    switch (ev.topic) {
      case 'local.restarted':
        return {tag: 'bridge', text: 'the bridge restarted (new events below)'};
      case 'session.joined':
        return {tag: 'joined', text: who(d.app, d.instance) + ' joined · ' + [d.kind, d.label, d.version].filter(Boolean).join(' ') +
          ' · ' + plural((d.methods || []).length, 'method')};
      case 'session.left':
        return {tag: 'left', text: who(d.app, d.instance) + ' left' + (d.reason ? ' · ' + d.reason : '')};
      case 'session.state':
        return {tag: 'state', text: who(d.app, d.instance) + ' is ' + d.state +
          (d.parked ? ' · ' + d.parked + ' parked' : '') + (d.in_flight ? ' · ' + d.in_flight + ' in flight' : '')};
      case 'context.changed':
        return {tag: 'context', text: who(d.app, d.instance) + ' context ' +
          (d.truncated ? '(too large to show: ' + d.bytes + ' bytes)' : ctxText(d.context) || '(empty)')};
      case 'bridge.call.failed':
        var c = d.caller ? who(d.caller.app, d.caller.instance) : 'http';
        return {tag: 'failed', text: (d.method || '?') + (d.instance ? ' on ' + d.instance : '') + ': ' + d.code + ' ' +
          (d.message || '') + ' · caller ' + c + ' · ' + msText(d.duration_ms || 0)};
      default:
        return {tag: ev.topic.split('.').pop(), text: ev.topic + ' ' + JSON.stringify(ev.data)};
    }
  }

  var knownApps = Object.create(null);

  // renderFilter lists the apps that connected (now, or in the log's
  // session events), not every namespace a failed call named.
  function renderFilter() {
    var changed = false;
    function known(a) { if (typeof a === 'string' && a && !knownApps[a]) { knownApps[a] = true; changed = true; } }
    st.sessions.forEach(function (x) { known(x.app); });
    st.events.forEach(function (ev) {
      if (typeof ev.topic === 'string' && ev.topic.indexOf('session.') === 0) known((ev.data || {}).app);
    });
    if (!changed) return;
    var sel = $('log-app');
    var keep = sel.value;
    while (sel.options.length > 1) sel.remove(1);
    Object.keys(knownApps).sort().forEach(function (a) {
      var o = el('option', null, a);
      o.value = a;
      sel.appendChild(o);
    });
    sel.value = keep;
  }

  function renderLog() {
    renderFilter();
    var list = $('log');
    var frag = document.createDocumentFragment();
    var shown = 0;
    for (var i = st.events.length - 1; i >= 0; i--) { // newest first
      var ev = st.events[i];
      var apps = eventApps(ev);
      if (st.filter && !ev.local && apps.indexOf(st.filter) < 0) continue;
      if (st.onlyFailed && ev.topic !== 'bridge.call.failed') continue;
      var dsc = describe(ev);
      var li = el('li', ev.local ? 'marker' : null);
      li.dataset.topic = ev.topic;
      li.dataset.app = apps.join(' ');
      var time = el('time', null, clock(ev.at));
      time.dateTime = ev.at;
      li.appendChild(time);
      li.appendChild(el('span', 'tag ' + dsc.tag, dsc.tag));
      li.appendChild(el('span', 'what', dsc.text));
      frag.appendChild(li);
      shown++;
    }
    list.textContent = '';
    list.appendChild(frag);
    setText('log-count', st.events.length ? (st.filter || st.onlyFailed ? shown + ' of ' + st.events.length : st.events.length) : '');
    setText('log-empty', !(st.esOpen || st.events.length) ? waiting() : st.onlyFailed ? 'No failed call in the log.' : 'No events yet.');
    $('log-empty').hidden = shown > 0;
  }

  // ---- start ----

  function start() {
    initToken();
    $('token-box').addEventListener('submit', tokenGiven);
    $('log-app').addEventListener('change', function (e) {
      st.filter = e.target.value;
      renderLog();
    });
    $('errors-card').addEventListener('click', function () {
      st.onlyFailed = !st.onlyFailed;
      $('errors-card').classList.toggle('on', st.onlyFailed);
      $('errors-card').title = st.onlyFailed ? 'show every event' : 'show the failed calls in the events';
      renderLog();
    });
    renderLog();
    poll();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
