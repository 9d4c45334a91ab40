// nnfractal explorer: plain JS + canvas, no dependencies. The server sends each map as colormap
// indices (the paper's restretch, Spectral's 256 colours), its boundary, and the window's axes.
"use strict";

const MARGIN = { left: 80, right: 24, top: 12, bottom: 56 };
const CSS_W = 640, CSS_H = 610;
const CURVE_W = 350, CURVE_H = 200;
const FINAL = new Set(["done", "failed", "cancelled"]);

const state = {
  lut: null,            // [[r, g, b] x 256]
  limits: null,
  windows: new Map(),   // id -> window info
  current: null,        // id of the window shown
  map: null,            // {id, rows, cols, done, pixels, boundary}
  mapImg: null,         // offscreen canvas cols x rows
  edgeImg: null,        // offscreen canvas (cols-1) x (rows-1)
  drag: null,           // {x0, y0, x1, y1} in CSS px
  selected: null,       // {row, col}
  curve: null,
  jobs: new Map(),      // id -> last seen job
  reported: new Set(),  // failed jobs already shown in the banner
  resolutionTouched: false,
};

const $ = (id) => document.getElementById(id);
const mapCanvas = $("map");
const curveCanvas = $("curve");

// ---- helpers ---------------------------------------------------------------------------------

async function api(path, opts = {}) {
  const init = { method: opts.method || "GET", headers: {} };
  if (opts.body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(opts.body);
  }
  const response = await fetch(path, init);
  let data = null;
  try { data = await response.json(); } catch (e) { data = null; }
  if (!response.ok) {
    const err = new Error((data && data.error) || `${response.status} ${response.statusText}`);
    err.status = response.status;
    throw err;
  }
  return data;
}

function showError(message) {
  $("banner-text").textContent = message;
  $("banner").classList.remove("hidden");
}

function hideError() { $("banner").classList.add("hidden"); }

function fmtValue(v) {
  if (v === null || v === undefined || !isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e4 || a < 1e-3)) return v.toExponential(3).replace("e+", "e");
  return Number(v.toPrecision(4)).toString();
}

function tickLabel(v, scale) {           // like the figures: values, 3 significant digits
  const value = scale === "log" ? Math.pow(10, v) : v;
  const a = Math.abs(value);
  if (a !== 0 && (a >= 1e4 || a < 1e-3)) {
    return value.toExponential(2).replace(/\.?0+e/, "e").replace("e+", "e");
  }
  return Number(value.toPrecision(3)).toString();
}

function niceTicks(lo, hi, target) {
  const span = hi - lo;
  if (!(span > 0)) return [lo];
  const raw = span / target;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const norm = raw / mag;
  const step = (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * mag;
  const ticks = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) {
    ticks.push(Math.abs(t) < step * 1e-9 ? 0 : t);
  }
  return ticks;
}

function setupCanvas(canvas, w, h) {
  const dpr = window.devicePixelRatio || 1;
  canvas.width = Math.round(w * dpr);
  canvas.height = Math.round(h * dpr);
  canvas.style.width = w + "px";
  canvas.style.height = h + "px";
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  return ctx;
}

function plotRect() {
  return { x: MARGIN.left, y: MARGIN.top, w: CSS_W - MARGIN.left - MARGIN.right,
           h: CSS_H - MARGIN.top - MARGIN.bottom };
}

function decode(b64) {
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function rangeText(win, lo, hi) {       // a window's range in axis units, as values
  return win.axis_scale === "log" ? `10^${fmtValue(lo)}..10^${fmtValue(hi)}`
    : `${fmtValue(lo)}..${fmtValue(hi)}`;
}

function wname(id) { return `w${String(id).padStart(3, "0")}`; }

function currentWindow() { return state.windows.get(state.current) || null; }

// ---- the map ---------------------------------------------------------------------------------

function buildImages(map) {
  const { rows, cols, done } = map;
  const pixels = decode(map.pixels);
  const img = document.createElement("canvas");
  img.width = cols; img.height = rows;
  const ictx = img.getContext("2d");
  const data = ictx.createImageData(cols, rows);
  for (let f = 0; f < done; f++) {
    const r = Math.floor(f / cols), c = f % cols;
    const o = ((rows - 1 - r) * cols + c) * 4;     // row 0 = smallest y, drawn at the bottom
    const rgb = state.lut[pixels[f]];
    data.data[o] = rgb[0]; data.data[o + 1] = rgb[1]; data.data[o + 2] = rgb[2];
    data.data[o + 3] = 255;
  }
  ictx.putImageData(data, 0, 0);
  let edge = null;
  const edges = rows > 1 && cols > 1 ? decode(map.boundary) : new Uint8Array(0);
  if (rows > 1 && cols > 1) {
    edge = document.createElement("canvas");
    edge.width = cols - 1; edge.height = rows - 1;
    const ectx = edge.getContext("2d");
    const ed = ectx.createImageData(cols - 1, rows - 1);
    for (let f = 0; f < edges.length; f++) {
      if (!edges[f]) continue;
      const r = Math.floor(f / (cols - 1)), c = f % (cols - 1);
      const o = ((rows - 2 - r) * (cols - 1) + c) * 4;
      ed.data[o] = 20; ed.data[o + 1] = 20; ed.data[o + 2] = 20; ed.data[o + 3] = 255;
    }
    ectx.putImageData(ed, 0, 0);
  }
  const flips = map.chaos ? decode(map.chaos) : null;
  state.map = { ...map, pixelIndex: pixels, edges, flips };
  document.body.dataset.map = `${map.id}:${map.done}`;
  showChaosLayer(map);
  state.mapImg = img;
  state.edgeImg = edge;
}

function drawMap() {
  const ctx = setupCanvas(mapCanvas, CSS_W, CSS_H);
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, CSS_W, CSS_H);
  const win = currentWindow();
  const p = plotRect();
  ctx.fillStyle = "#e6e8eb";
  ctx.fillRect(p.x, p.y, p.w, p.h);
  if (!win) return;
  const map = state.map && state.map.id === win.id ? state.map : null;
  ctx.imageSmoothingEnabled = false;
  if (map && $("layer-map").checked && state.mapImg) {
    ctx.drawImage(state.mapImg, p.x, p.y, p.w, p.h);
  }
  if (map && $("layer-boundary").checked && state.edgeImg) {
    // Boundary pixel (i, j) covers scores[i:i+2, j:j+2]: it sits on the corner between four
    // pixel centres. Large cells get a dot there (the map stays visible), small ones the image.
    const cw = p.w / map.cols, ch = p.h / map.rows;
    ctx.fillStyle = "rgba(10,10,10,0.8)";
    if (cw >= 6 && ch >= 6) {
      const edges = state.map.edges;
      const r = Math.min(5, Math.max(2, Math.min(cw, ch) * 0.22));
      for (let f = 0; f < edges.length; f++) {
        if (!edges[f]) continue;
        const i = Math.floor(f / (map.cols - 1)), j = f % (map.cols - 1);
        const cx = p.x + (j + 1) * cw, cy = p.y + p.h - (i + 1) * ch;
        ctx.beginPath(); ctx.arc(cx, cy, r, 0, 2 * Math.PI); ctx.fill();
      }
    } else {
      ctx.globalAlpha = 0.8;
      ctx.drawImage(state.edgeImg, p.x + cw / 2, p.y + ch / 2, p.w - cw, p.h - ch);
      ctx.globalAlpha = 1;
    }
  }
  if (map && map.flips && $("layer-chaos").checked) drawFlips(ctx, map, p);
  ctx.strokeStyle = "#333";
  ctx.lineWidth = 1;
  ctx.strokeRect(p.x + 0.5, p.y + 0.5, p.w - 1, p.h - 1);
  drawAxes(ctx, win, p);
  if (state.selected && map) {
    const cw = p.w / map.cols, ch = p.h / map.rows;
    const sx = p.x + state.selected.col * cw, sy = p.y + (map.rows - 1 - state.selected.row) * ch;
    ctx.lineWidth = 2;
    ctx.strokeStyle = "#000";
    ctx.strokeRect(sx - 1, sy - 1, Math.max(cw, 4) + 2, Math.max(ch, 4) + 2);
    ctx.strokeStyle = "#fff";
    ctx.lineWidth = 1;
    ctx.strokeRect(sx + 0.5, sy + 0.5, Math.max(cw, 4) - 1, Math.max(ch, 4) - 1);
  }
  if (state.drag) {
    const d = state.drag;
    const x = Math.min(d.x0, d.x1), y = Math.min(d.y0, d.y1);
    const w = Math.abs(d.x1 - d.x0), h = Math.abs(d.y1 - d.y0);
    ctx.fillStyle = "rgba(255,255,255,0.18)";
    ctx.fillRect(x, y, w, h);
    ctx.setLineDash([5, 3]);
    ctx.lineWidth = 1.5;
    ctx.strokeStyle = "#111";
    ctx.strokeRect(x, y, w, h);
    ctx.setLineDash([]);
  }
}

// ---- the chaos layer: pixels whose twin, moved by a few rounding units, has the other outcome ----

function showChaosLayer(map) {
  const box = $("layer-chaos"), note = $("chaos-note");
  box.disabled = !map.chaos;
  if (!map.chaos) {
    note.textContent = "no twins (explore --chaos, or a run with --chaos)";
    document.body.dataset.chaos = "none";
    return;
  }
  const f = map.chaos_fraction;
  const pct = (v) => (v === null ? "n/a" : `${(100 * v).toFixed(1)}%`);
  note.textContent = `flips at ${f.ulps} ulps: ${pct(f.all)} of ${f.n_twinned} pixels, ` +
    `${pct(f.boundary)} of ${f.n_boundary} boundary pixels`;
  document.body.dataset.chaos = String(f.n_flipped);
}

function drawFlips(ctx, map, p) {
  // Flipped pixels as black squares with a white rim, at least 4 px so that they are seen.
  const cw = p.w / map.cols, ch = p.h / map.rows;
  const w = Math.max(cw, 4), h = Math.max(ch, 4);
  let drawn = 0;
  for (let f = 0; f < map.flips.length; f++) {
    if (!map.flips[f]) continue;
    const r = Math.floor(f / map.cols), c = f % map.cols;
    const x = p.x + c * cw + (cw - w) / 2, y = p.y + (map.rows - 1 - r) * ch + (ch - h) / 2;
    ctx.fillStyle = "#000";
    ctx.fillRect(x, y, w, h);
    ctx.strokeStyle = "#fff";
    ctx.lineWidth = 1;
    ctx.strokeRect(x + 0.5, y + 0.5, w - 1, h - 1);
    drawn++;
  }
  document.body.dataset.chaosDrawn = String(drawn);
}

function drawAxes(ctx, win, p) {
  const [y0, y1, x0, x1] = win.mnmx;
  ctx.fillStyle = "#222";
  ctx.strokeStyle = "#333";
  ctx.font = "12px system-ui, sans-serif";
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  for (const t of niceTicks(x0, x1, 6)) {
    const px = p.x + (t - x0) / (x1 - x0) * p.w;
    ctx.beginPath(); ctx.moveTo(px, p.y + p.h); ctx.lineTo(px, p.y + p.h + 5); ctx.stroke();
    ctx.fillText(tickLabel(t, win.axis_scale), px, p.y + p.h + 7);
  }
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  for (const t of niceTicks(y0, y1, 6)) {
    const py = p.y + p.h - (t - y0) / (y1 - y0) * p.h;
    ctx.beginPath(); ctx.moveTo(p.x - 5, py); ctx.lineTo(p.x, py); ctx.stroke();
    ctx.fillText(tickLabel(t, win.axis_scale), p.x - 7, py);
  }
  ctx.font = "13px system-ui, sans-serif";
  ctx.textAlign = "center";
  ctx.textBaseline = "bottom";
  const scaleNote = win.axis_scale === "log" ? " (log scale)" : "";
  ctx.fillText(win.xlabel + scaleNote, p.x + p.w / 2, CSS_H - 6);
  ctx.save();
  ctx.translate(16, p.y + p.h / 2);
  ctx.rotate(-Math.PI / 2);
  ctx.textBaseline = "middle";
  ctx.fillText(win.ylabel + scaleNote, 0, 0);
  ctx.restore();
}

// Canvas position (CSS px) -> axis units and pixel indices of the current window.
function locate(px, py) {
  const win = currentWindow();
  if (!win) return null;
  const p = plotRect();
  const u = (px - p.x) / p.w, v = (py - p.y) / p.h;
  if (u < 0 || u > 1 || v < 0 || v > 1) return null;
  const [y0, y1, x0, x1] = win.mnmx;
  const n = win.resolution;
  const col = Math.min(n - 1, Math.max(0, Math.floor(u * n)));
  const row = Math.min(n - 1, Math.max(0, Math.floor((1 - v) * n)));
  return { ax: x0 + u * (x1 - x0), ay: y1 - v * (y1 - y0), row, col };
}

function eventPos(ev) {
  const r = mapCanvas.getBoundingClientRect();
  return { x: (ev.clientX - r.left) * CSS_W / r.width, y: (ev.clientY - r.top) * CSS_H / r.height };
}

function clampToPlot(pos) {
  const p = plotRect();
  return { x: Math.min(p.x + p.w, Math.max(p.x, pos.x)), y: Math.min(p.y + p.h, Math.max(p.y, pos.y)) };
}

function pixelState(row, col) {
  const map = state.map;
  const win = currentWindow();
  if (!map || !win || map.id !== win.id) return "";
  const f = row * map.cols + col;
  if (f >= map.done) return "not trained yet";
  return map.pixelIndex[f] >= 128 ? "converged" : "diverged";
}

function showHover(loc) {
  const win = currentWindow();
  if (!loc || !win) { $("hover").innerHTML = "&nbsp;"; return; }
  const xv = win.x[loc.col], yv = win.y[loc.row];
  const exp = (v) => (win.axis_scale === "log" ? `  (10^${Math.log10(v).toFixed(4)})` : "");
  $("hover").textContent =
    `${win.xlabel} = ${fmtValue(xv)}${exp(xv)}\n${win.ylabel} = ${fmtValue(yv)}${exp(yv)}\n` +
    `pixel row ${loc.row}, col ${loc.col}: ${pixelState(loc.row, loc.col)}`;
}

mapCanvas.addEventListener("pointerdown", (ev) => {
  if (ev.button !== 0) return;
  const pos = eventPos(ev);
  if (!locate(pos.x, pos.y)) return;
  state.drag = { x0: pos.x, y0: pos.y, x1: pos.x, y1: pos.y };
  mapCanvas.setPointerCapture(ev.pointerId);
  ev.preventDefault();
});

mapCanvas.addEventListener("pointermove", (ev) => {
  const pos = eventPos(ev);
  showHover(locate(pos.x, pos.y));
  if (state.drag) {
    const c = clampToPlot(pos);
    state.drag.x1 = c.x; state.drag.y1 = c.y;
    drawMap();
  }
});

mapCanvas.addEventListener("pointerleave", () => { if (!state.drag) showHover(null); });

mapCanvas.addEventListener("pointerup", (ev) => {
  if (!state.drag) return;
  const d = state.drag;
  state.drag = null;
  const end = clampToPlot(eventPos(ev));
  d.x1 = end.x; d.y1 = end.y;
  if (Math.abs(d.x1 - d.x0) < 4 && Math.abs(d.y1 - d.y0) < 4) {
    drawMap();
    const loc = locate(d.x0, d.y0);
    if (loc) selectPixel(loc.row, loc.col);
    return;
  }
  drawMap();
  zoomTo(d);
});

document.addEventListener("keydown", (ev) => {
  if (ev.key === "Escape" && state.drag) { state.drag = null; drawMap(); }
});

async function zoomTo(d) {
  const win = currentWindow();
  if (!win) return;
  const a = locate(Math.min(d.x0, d.x1), Math.max(d.y0, d.y1));   // bottom left
  const b = locate(Math.max(d.x0, d.x1), Math.min(d.y0, d.y1));   // top right
  if (!a || !b) return;
  const resolution = parseInt($("resolution").value, 10);
  const body = { parent: win.id, mnmx: [a.ay, b.ay, a.ax, b.ax] };
  if (Number.isInteger(resolution)) body.resolution = resolution;
  try {
    const res = await api("/api/windows", { method: "POST", body });
    hideError();
    state.windows.set(res.window.id, res.window);
    state.jobs.set(res.job.id, res.job);
    navigate(res.window.id);
    schedulePoll(50);
  } catch (err) {
    showError(`zoom refused: ${err.message}`);
  }
}

// ---- the loss curve ------------------------------------------------------------------------------

async function selectPixel(row, col) {
  const win = currentWindow();
  if (!win) return;
  state.selected = { row, col };
  drawMap();
  try {
    state.curve = await api(`/api/windows/${win.id}/curve?row=${row}&col=${col}`);
    drawCurve();
  } catch (err) {
    state.curve = null;
    drawCurve();
    $("curve-info").textContent = err.message;
  }
}

function drawCurve() {
  const ctx = setupCanvas(curveCanvas, CURVE_W, CURVE_H);
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, CURVE_W, CURVE_H);
  const c = state.curve;
  const win = currentWindow();
  const m = { left: 50, right: 10, top: 10, bottom: 30 };
  const w = CURVE_W - m.left - m.right, h = CURVE_H - m.top - m.bottom;
  ctx.strokeStyle = "#999";
  ctx.strokeRect(m.left + 0.5, m.top + 0.5, w, h);
  if (!c) { $("curve-info").textContent = "click a pixel of the map"; return; }
  const n = c.loss.length;
  const logs = c.loss.map((v) => (v !== null && v > 0 ? Math.log10(v) : null));
  const finite = logs.filter((v) => v !== null);
  ctx.font = "11px system-ui, sans-serif";
  ctx.fillStyle = "#333";
  if (finite.length) {
    let lo = Math.min(...finite), hi = Math.max(...finite);
    if (hi - lo < 1e-9) { lo -= 0.5; hi += 0.5; }
    const pad = (hi - lo) * 0.05;
    lo -= pad; hi += pad;
    const X = (i) => m.left + (n > 1 ? i / (n - 1) : 0.5) * w;
    const Y = (v) => m.top + h - (v - lo) / (hi - lo) * h;
    // y ticks: powers of ten, or nice values in log space when the range is under a decade
    let ticks = [];
    for (let e = Math.ceil(lo); e <= Math.floor(hi); e++) ticks.push(e);
    if (ticks.length < 2) ticks = niceTicks(lo, hi, 4);
    const step = Math.max(1, Math.ceil(ticks.length / 6));
    ctx.textAlign = "right"; ctx.textBaseline = "middle";
    ticks.filter((_, i) => i % step === 0).forEach((t) => {
      const y = Y(t);
      ctx.strokeStyle = "#eee";
      ctx.beginPath(); ctx.moveTo(m.left, y); ctx.lineTo(m.left + w, y); ctx.stroke();
      const label = Number.isInteger(t) ? `1e${t}` : Number(Math.pow(10, t).toPrecision(2)).toString();
      ctx.fillText(label, m.left - 4, y);
    });
    ctx.strokeStyle = c.converged === false ? "#d73027" : "#3b6fb6";
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    let pen = false;
    logs.forEach((v, i) => {
      if (v === null) { pen = false; return; }
      if (pen) ctx.lineTo(X(i), Y(v)); else ctx.moveTo(X(i), Y(v));
      pen = true;
    });
    ctx.stroke();
    if (c.first_nonfinite_step !== null) {
      const x = X(c.first_nonfinite_step);
      ctx.strokeStyle = "#d73027";
      ctx.setLineDash([3, 3]);
      ctx.beginPath(); ctx.moveTo(x, m.top); ctx.lineTo(x, m.top + h); ctx.stroke();
      ctx.setLineDash([]);
    }
  } else {
    ctx.textAlign = "center";
    ctx.fillText("no finite loss values", m.left + w / 2, m.top + h / 2);
  }
  ctx.fillStyle = "#333";
  ctx.textAlign = "center"; ctx.textBaseline = "top";
  ctx.fillText("step", m.left + w / 2, m.top + h + 14);
  ctx.textAlign = "left"; ctx.fillText("0", m.left, m.top + h + 3);
  ctx.textAlign = "right"; ctx.fillText(String(n - 1), m.left + w, m.top + h + 3);
  ctx.save();
  ctx.translate(11, m.top + h / 2); ctx.rotate(-Math.PI / 2);
  ctx.textAlign = "center"; ctx.textBaseline = "middle";
  ctx.fillText("training loss (log)", 0, 0);
  ctx.restore();
  const verdict = c.converged === null ? "" : c.converged ? "converged" : "diverged";
  const lines = [
    `row ${c.row}, col ${c.col}: ${verdict}` + (c.score !== null ? ` (score ${fmtValue(c.score)})` : ""),
    win ? `${win.xlabel} = ${fmtValue(c.x)}` : "",
    win ? `${win.ylabel} = ${fmtValue(c.y)}` : "",
  ];
  if (c.first_nonfinite_step !== null) lines.push(`loss became inf/NaN at step ${c.first_nonfinite_step}`);
  $("curve-info").textContent = lines.filter(Boolean).join("\n");
}

// ---- panels ----------------------------------------------------------------------------------

function renderCrumbs() {
  const nav = $("crumbs");
  nav.textContent = "";
  const win = currentWindow();
  if (!win) return;
  win.ancestors.forEach((id, i) => {
    if (i) {
      const sep = document.createElement("span");
      sep.className = "sep"; sep.textContent = "\u203a";
      nav.appendChild(sep);
    }
    const w = state.windows.get(id);
    const el = document.createElement(id === win.id ? "span" : "a");
    el.className = "crumb" + (id === win.id ? " current" : "") +
      (w && (w.status === "failed" || w.status === "cancelled") ? " failed" : "");
    el.textContent = wname(id);
    el.dataset.window = String(id);
    if (id !== win.id) { el.href = `#w${id}`; }
    nav.appendChild(el);
  });
}

function renderWindowList() {
  const ul = $("window-list");
  ul.textContent = "";
  [...state.windows.values()].sort((a, b) => a.id - b.id).forEach((w) => {
    const li = document.createElement("li");
    li.className = (w.id === state.current ? "current " : "") + w.status;
    const depth = w.ancestors.length - 1;
    const [y0, y1, x0, x1] = w.mnmx;
    li.textContent = `${"\u00a0\u00a0".repeat(depth)}${w.name}  ${w.status}  ` +
      `y ${rangeText(w, y0, y1)}, x ${rangeText(w, x0, x1)}, ${w.resolution} px`;
    li.addEventListener("click", () => navigate(w.id));
    ul.appendChild(li);
  });
}

function kv(rows) {
  const div = $("win-info");
  div.textContent = "";
  rows.forEach(([k, v]) => {
    const a = document.createElement("span"); a.className = "k"; a.textContent = k;
    const b = document.createElement("span"); b.textContent = v;
    div.append(a, b);
  });
}

function renderInfo() {
  const win = currentWindow();
  if (!win) return;
  $("win-title").textContent = `window ${win.name}`;
  document.body.dataset.window = String(win.id);      // for scripts and tests
  document.body.dataset.status = win.status;
  const [y0, y1, x0, x1] = win.mnmx;
  const range = (lo, hi) => rangeText(win, lo, hi);
  const rows = [
    ["status", win.status],
    ["model", `${win.preset}: ${win.model}, ${win.nonlinearity}, ${win.optimizer}`],
    ["y", `${win.ylabel}: ${range(y0, y1)}`],
    ["x", `${win.xlabel}: ${range(x0, x1)}`],
    ["grid", `${win.resolution} x ${win.resolution}` + (win.steps ? `, ${win.steps} steps` : "")],
  ];
  if (win.fraction_converged !== null) {
    rows.push(["converged", `${(win.fraction_converged * 100).toFixed(1)} %`]);
  }
  if (win.wall_time_s !== null) rows.push(["trained in", `${win.wall_time_s.toFixed(1)} s`]);
  kv(rows);
  const dim = $("dimension");
  if (win.dimension) {
    dim.textContent = `boundary dimension: ${win.dimension.text}` +
      (win.dimension.n_boundary_pixels ? `  (${win.dimension.n_boundary_pixels} boundary pixels)` : "");
    dim.className = "dimension" + (win.dimension.ok ? "" : " not-ok");
  } else if (win.status === "failed" || win.status === "cancelled") {
    dim.textContent = "no map";
    dim.className = "dimension not-ok";
  } else {
    dim.textContent = "boundary dimension: when the window is finished";
    dim.className = "dimension not-ok";
  }
  const dl = $("download");
  if (win.png_url) { dl.href = win.png_url; dl.classList.remove("disabled"); }
  else { dl.removeAttribute("href"); dl.classList.add("disabled"); }
  $("report").disabled = win.status !== "done";
  const link = $("report-link");
  if (win.report_url) { link.href = win.report_url; link.classList.remove("hidden"); }
  else link.classList.add("hidden");
  const status = $("map-status");
  if (win.status === "failed" || win.status === "cancelled") {
    status.textContent = win.status === "failed" ? `This window failed: ${win.error}`
      : "This window was cancelled.";
    status.className = "map-status failed";
  } else if (win.status === "queued") {
    const pos = win.job && win.job.position ? ` (position ${win.job.position} in the queue)` : "";
    status.textContent = `Waiting for the worker${pos}...`;
    status.className = "map-status";
  } else if (win.status === "running" && state.map && state.map.id === win.id && state.map.done === 0) {
    status.textContent = `Training ${win.resolution * win.resolution} models...`;
    status.className = "map-status";
  } else {
    status.className = "map-status hidden";
  }
  if (!state.resolutionTouched) $("resolution").value = String(win.resolution);
}

function renderJobs(jobs) {
  const win = currentWindow();
  const active = jobs.filter((j) => j.status === "queued" || j.status === "running");
  const running = active.find((j) => j.status === "running");
  const mine = win ? jobs.filter((j) => j.window === win.id).pop() : null;
  const show = running || mine;
  const st = $("job-status"), bar = $("job-progress"), cancel = $("cancel");
  st.classList.remove("failed");
  if (show) {
    const what = (show.kind === "window" ? "" : "report of ") + wname(show.window);
    let text = `job ${show.id} (${what}): ${show.status}`;
    if (show.status === "running") text += ` - ${show.phase}, ${(show.progress * 100).toFixed(0)} %`;
    if (show.status === "failed") { text += `: ${show.error}`; st.classList.add("failed"); }
    st.textContent = text;
    bar.value = show.progress;
    bar.classList.toggle("hidden", show.status !== "running");
    const stoppable = show.kind === "window" && (show.status === "running" || show.status === "queued");
    cancel.classList.toggle("hidden", !stoppable);
    cancel.dataset.job = String(show.id);
  } else {
    st.textContent = "idle";
    bar.classList.add("hidden");
    cancel.classList.add("hidden");
  }
  const q = $("queue");
  q.textContent = "";
  active.filter((j) => j.status === "queued").forEach((j) => {
    const li = document.createElement("li");
    li.textContent = `#${j.position}: job ${j.id}, ${j.kind} ${wname(j.window)}`;
    q.appendChild(li);
  });
}

// ---- state updates -------------------------------------------------------------------------------

async function refreshWindow(id, withMap) {
  const before = state.windows.get(id);
  const info = await api(`/api/windows/${id}`);
  state.windows.set(id, info);
  const unchanged = state.map && state.map.id === id && before && before.status === info.status
    && state.map.done === info.done_points;
  if (withMap && id === state.current && !unchanged) {
    const map = await api(`/api/windows/${id}/map`);
    if (id === state.current) buildImages(map);
  }
  return info;
}

async function navigate(id) {
  if (!state.windows.has(id)) {
    try { await refreshWindow(id, false); } catch (err) { showError(err.message); return; }
  }
  if (location.hash !== `#w${id}`) {
    history.pushState(null, "", `#w${id}`);
  }
  await show(id);
}

async function show(id) {
  state.current = id;
  state.selected = null;
  state.curve = null;
  state.map = null;
  drawCurve();
  try {
    await refreshWindow(id, true);
  } catch (err) {
    showError(err.message);
  }
  renderAll();
}

function renderAll() {
  renderCrumbs();
  renderInfo();
  renderWindowList();
  drawMap();
}

let pollTimer = null;
function schedulePoll(ms) {
  if (pollTimer) clearTimeout(pollTimer);
  pollTimer = setTimeout(poll, ms);
}

async function poll() {
  pollTimer = null;
  let busy = false;
  try {
    const jobs = await api("/api/jobs");
    let changed = false;
    for (const j of jobs) {
      const old = state.jobs.get(j.id);
      if (!old || old.status !== j.status) changed = true;
      state.jobs.set(j.id, j);
      if (j.status === "failed" && !state.reported.has(j.id)) {
        state.reported.add(j.id);
        const what = j.kind === "window" ? "window" : "report of window";
        showError(`job ${j.id} (${what} ${wname(j.window)}) failed: ${j.error}`);
      }
    }
    busy = jobs.some((j) => j.status === "queued" || j.status === "running");
    renderJobs(jobs);
    const win = currentWindow();
    if (win && (!FINAL.has(win.status) || changed)) {
      await refreshWindow(win.id, !FINAL.has(win.status) || !state.map || state.map.id !== win.id
        || state.map.done < win.total_points);
    }
    if (changed) {
      const all = await api("/api/windows");
      all.forEach((w) => state.windows.set(w.id, w));
    }
    renderAll();
  } catch (err) {
    showError(`lost contact with the explorer server: ${err.message}`);
    busy = true;
  }
  schedulePoll(busy ? 400 : 2000);
}

// ---- controls --------------------------------------------------------------------------------

$("banner-close").addEventListener("click", hideError);
$("layer-map").addEventListener("change", drawMap);
$("layer-boundary").addEventListener("change", drawMap);
$("layer-chaos").addEventListener("change", drawMap);
$("resolution").addEventListener("input", () => { state.resolutionTouched = true; });
$("crumbs").addEventListener("click", (ev) => {
  const el = ev.target.closest("a[data-window]");
  if (!el) return;
  ev.preventDefault();
  navigate(parseInt(el.dataset.window, 10));
});
$("cancel").addEventListener("click", async () => {
  const id = $("cancel").dataset.job;
  try { await api(`/api/jobs/${id}/cancel`, { method: "POST", body: {} }); }
  catch (err) { showError(`cancel refused: ${err.message}`); }
  schedulePoll(50);
});
$("report").addEventListener("click", async () => {
  const win = currentWindow();
  if (!win) return;
  try {
    const res = await api(`/api/windows/${win.id}/report`, { method: "POST", body: {} });
    state.jobs.set(res.job.id, res.job);
    hideError();
    schedulePoll(50);
  } catch (err) {
    showError(`report refused: ${err.message}`);
  }
});
window.addEventListener("popstate", () => {
  const m = /^#w(\d+)$/.exec(location.hash);
  if (m) show(parseInt(m[1], 10));
});

async function start() {
  drawMap();
  drawCurve();
  try {
    const s = await api("/api/session");
    state.lut = s.colormap;
    state.limits = s.limits;
    $("resolution").min = String(s.limits.resolution_min);
    $("resolution").max = String(s.limits.resolution_max);
    s.windows.forEach((w) => state.windows.set(w.id, w));
    s.jobs.forEach((j) => { state.jobs.set(j.id, j); if (j.status === "failed") state.reported.add(j.id); });
    if (s.default_resolution) {
      $("resolution").value = String(s.default_resolution);
      state.resolutionTouched = true;
    }
    const m = /^#w(\d+)$/.exec(location.hash);
    const first = m && state.windows.has(parseInt(m[1], 10)) ? parseInt(m[1], 10) : 0;
    if (!m) history.replaceState(null, "", `#w${first}`);
    await show(first);
    renderJobs(s.jobs);
  } catch (err) {
    showError(`cannot reach the explorer server: ${err.message}`);
  }
  schedulePoll(300);
}

start();
