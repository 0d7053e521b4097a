// The driftline dashboard page: one stream at a time, fed by /dashboard/api/events (server-sent events).
// Plain browser JavaScript (no build step beyond copying); uPlot is the global `uPlot`.
'use strict';

const MAX_TRACE = 3000;
const MAX_ERROR = 2000;
/** Heartbeats without a newer event time before the feed is called dropped. */
const STALE_HEARTBEATS = 3;

const params = new URLSearchParams(location.search);
const token = params.get('token');
const withToken = (path) => (token ? `${path}${path.includes('?') ? '&' : '?'}token=${encodeURIComponent(token)}` : path);

const $ = (id) => document.getElementById(id);
const picker = $('stream-picker');
const outputPicker = $('output-picker');
const status = $('status');
const message = $('message');

const state = {
  stream: params.get('stream'),
  output: 0,
  trace: [],
  error: [],
  markers: [],
  recoveries: [],
  lastT: null,
  sameLastT: 0,
  source: null,
  pending: false,
};

function setStatus(kind, text) {
  status.dataset.state = kind;
  status.textContent = text;
  document.body.dataset.status = kind;
}

function showMessage(text) {
  message.hidden = text === null;
  message.textContent = text ?? '';
}

function markerColor(m) {
  return m.source === 'session' ? '#2a6fdb' : '#d9480f';
}

/** A uPlot plugin drawing the drift markers as vertical lines. */
const markerPlugin = {
  hooks: {
    draw: [
      (u) => {
        const { ctx, bbox } = u;
        ctx.save();
        ctx.lineWidth = 2 * devicePixelRatio;
        for (const m of state.markers) {
          const x = u.valToPos(m.t, 'x', true);
          if (!(x >= bbox.left && x <= bbox.left + bbox.width)) continue;
          ctx.strokeStyle = markerColor(m);
          ctx.setLineDash(m.source === 'session' ? [] : [6 * devicePixelRatio, 4 * devicePixelRatio]);
          ctx.beginPath();
          ctx.moveTo(x, bbox.top);
          ctx.lineTo(x, bbox.top + bbox.height);
          ctx.stroke();
        }
        ctx.restore();
      },
    ],
  },
};

// Compact tick labels (-2.5K, 10M) in an axis wide enough for them: force in raw units and MSEs in the millions
// otherwise lose their signs and leading digits at the canvas edge.
const compact = new Intl.NumberFormat('en', { notation: 'compact', maximumSignificantDigits: 3 });
const valueAxis = (label) => ({
  ...(label ? { label } : {}),
  size: 64,
  values: (u, splits) => splits.map((v) => (v === null || v === undefined ? '' : compact.format(v))),
});

function width() {
  return Math.max(400, document.body.clientWidth - 20);
}

const tracePlot = new uPlot(
  {
    width: width(),
    height: 260,
    scales: { x: { time: false } },
    axes: [{ label: 't (s)' }, valueAxis()],
    series: [
      {},
      { label: 'prediction', stroke: '#2a6fdb', width: 1.5 },
      { label: 'label (learned from)', stroke: '#333', width: 1 },
      { label: 'label (held out)', stroke: '#2b8a3e', width: 2 },
    ],
    plugins: [markerPlugin],
  },
  [[], [], [], []],
  $('trace-plot'),
);

const errorPlot = new uPlot(
  {
    width: width(),
    height: 260,
    scales: { x: { time: false }, y: { distr: 3 } },
    axes: [{ label: 't (s)' }, valueAxis('MSE')],
    series: [
      {},
      { label: 'learner', stroke: '#2a6fdb', width: 2 },
      { label: 'last label', stroke: '#999', width: 1 },
      { label: 'running mean', stroke: '#bbb', width: 1, dash: [4, 4] },
      { label: 'learner, held out', stroke: '#2b8a3e', width: 2 },
      { label: 'last label, held out', stroke: '#8fbc8f', width: 1 },
      { label: 'running mean, held out', stroke: '#b2d8b2', width: 1, dash: [4, 4] },
    ],
    plugins: [markerPlugin],
  },
  [[], [], [], [], [], [], []],
  $('error-plot'),
);

// What a test (or a curious reader) can inspect: the plots and the data behind them.
window.driftlineDashboard = { tracePlot, errorPlot, state };

const positive = (v) => (v > 0 && Number.isFinite(v) ? v : null);

function redraw() {
  state.pending = false;
  const k = state.output;
  const t = state.trace.map((p) => p.t);
  tracePlot.setData([
    t,
    state.trace.map((p) => p.yhat[k] ?? null),
    state.trace.map((p) => (p.heldOut ? null : p.y[k] ?? null)),
    state.trace.map((p) => (p.heldOut ? p.y[k] ?? null : null)),
  ]);
  const e = state.error;
  const track = (held, pick) => e.map((p) => (p.heldOut === held ? positive(p[pick]) : null));
  errorPlot.setData([
    e.map((p) => p.t),
    track(false, 'learner'), track(false, 'lastLabel'), track(false, 'runningMean'),
    track(true, 'learner'), track(true, 'lastLabel'), track(true, 'runningMean'),
  ]);
  document.body.dataset.tracePoints = String(state.trace.length);
  document.body.dataset.errorPoints = String(state.error.length);
  document.body.dataset.markers = String(state.markers.length);
  document.body.dataset.recoveries = String(state.recoveries.length);
  drawRecoveries();
}

function scheduleRedraw() {
  if (state.pending) return;
  state.pending = true;
  requestAnimationFrame(redraw);
}

const fmt = (v, digits) => (v === null || v === undefined || !Number.isFinite(v) ? '-' : v.toFixed(digits));

function drawRecoveries() {
  const body = $('recoveries').tBodies[0];
  const rows = state.recoveries.slice(-50).reverse();
  body.replaceChildren(
    ...rows.map((r) => {
      const tr = document.createElement('tr');
      const cells = [
        fmt(r.t, 1), r.source === 'session' ? 'declared boundary' : `detected (${r.source})`, r.heldOut ? 'held out' : 'learning',
        r.recovery === null ? 'little harm' : `${fmt(100 * r.recovery, 0)} %`, fmt(r.residual, 2),
        r.secondsToRecovery === null ? 'not yet' : `${fmt(r.secondsToRecovery, 1)} s (${r.ticksToRecovery} ticks)`,
      ];
      for (const c of cells) {
        const td = document.createElement('td');
        td.textContent = c;
        tr.append(td);
      }
      return tr;
    }),
  );
}

function append(view) {
  state.trace.push(...view.trace);
  state.error.push(...view.error);
  state.markers.push(...view.markers);
  state.recoveries.push(...view.recoveries);
  if (state.trace.length > MAX_TRACE) state.trace.splice(0, state.trace.length - MAX_TRACE);
  if (state.error.length > MAX_ERROR) state.error.splice(0, state.error.length - MAX_ERROR);
  if (state.markers.length > 200) state.markers.splice(0, state.markers.length - 200);
  if (state.recoveries.length > 200) state.recoveries.splice(0, state.recoveries.length - 200);
  const outputs = state.trace.length > 0 ? state.trace[state.trace.length - 1].y.length : 0;
  if (outputPicker.options.length !== outputs) {
    outputPicker.replaceChildren(...Array.from({ length: outputs }, (_, i) => new Option(String(i), String(i))));
    outputPicker.value = String(Math.min(state.output, Math.max(0, outputs - 1)));
  }
  scheduleRedraw();
}

function showInfo(info) {
  $('learner-spec').textContent = info ? `learner: ${info.learner}` : '';
  $('state-bytes').textContent = info ? `state: ${info.stateBytes.toLocaleString()} bytes` : '';
}

function connect(stream) {
  state.source?.close();
  Object.assign(state, { trace: [], error: [], markers: [], recoveries: [], lastT: null, sameLastT: 0 });
  scheduleRedraw();
  setStatus('connecting', 'connecting');
  const source = new EventSource(withToken(`/dashboard/api/events?stream=${encodeURIComponent(stream)}`));
  state.source = source;
  source.addEventListener('snapshot', (ev) => {
    const data = JSON.parse(ev.data);
    Object.assign(state, { trace: [], error: [], markers: [], recoveries: [] });
    append(data.view);
    showInfo(data.info);
    showMessage(null);
    setStatus(data.known ? 'live' : 'waiting', data.known ? 'live' : `waiting for stream '${stream}': no data yet`);
  });
  source.addEventListener('batch', (ev) => {
    append(JSON.parse(ev.data));
    setStatus('live', 'live');
  });
  source.addEventListener('heartbeat', (ev) => {
    const beat = JSON.parse(ev.data);
    showInfo(beat.info);
    $('ticks').textContent = beat.known ? `${beat.scoredTicks.toLocaleString()} scored ticks` : '';
    if (!beat.known) return setStatus('waiting', `waiting for stream '${stream}': no data yet`);
    state.sameLastT = beat.lastT === state.lastT ? state.sameLastT + 1 : 0;
    state.lastT = beat.lastT;
    if (state.sameLastT >= STALE_HEARTBEATS) setStatus('stale', `feed dropped: no new tick since t = ${fmt(beat.lastT, 2)} s`);
    else setStatus('live', 'live');
  });
  source.onerror = () => setStatus('disconnected', 'disconnected: reconnecting');
}

async function loadStreams() {
  let response;
  try {
    response = await fetch(withToken('/dashboard/api/streams'));
  } catch {
    setStatus('disconnected', 'disconnected: retrying');
    return setTimeout(loadStreams, 2000);
  }
  if (response.status === 401) {
    setStatus('error', 'unauthorized');
    return showMessage('This dashboard needs the token of the predictions path: open /dashboard?token=<token>. The token given was refused.');
  }
  if (!response.ok) {
    setStatus('error', `error ${response.status}`);
    return setTimeout(loadStreams, 2000);
  }
  const { streams } = await response.json();
  const names = streams.map((s) => s.stream);
  const current = new Set([...picker.options].map((o) => o.value));
  for (const name of names) if (!current.has(name)) picker.append(new Option(name, name));
  if (state.stream === null) {
    if (names.length === 0) {
      setStatus('waiting', 'waiting for a stream: no data has arrived yet');
      return setTimeout(loadStreams, 1000);
    }
    state.stream = names[0];
  } else if (!names.includes(state.stream)) {
    showMessage(`Unknown stream '${state.stream}': no data for it has arrived${names.length > 0 ? ` (streams: ${names.join(', ')})` : ''}. Waiting for it.`);
    if (!current.has(state.stream)) picker.append(new Option(state.stream, state.stream));
  }
  picker.value = state.stream;
  if (state.source === null) connect(state.stream);
  setTimeout(loadStreams, 5000);
}

picker.addEventListener('change', () => {
  state.stream = picker.value;
  const url = new URL(location.href);
  url.searchParams.set('stream', state.stream);
  history.replaceState(null, '', url);
  showMessage(null);
  connect(state.stream);
});
outputPicker.addEventListener('change', () => {
  state.output = Number(outputPicker.value);
  scheduleRedraw();
});
addEventListener('resize', () => {
  tracePlot.setSize({ width: width(), height: 260 });
  errorPlot.setSize({ width: width(), height: 260 });
});

setStatus('connecting', 'connecting');
loadStreams();
