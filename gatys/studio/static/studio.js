// gatys studio's page: no build step, no dependencies. Every request carries the launch's
// token (a header for fetch, the query for what the browser loads itself); every name from the
// folder is shown as text, never as markup.
"use strict";

const token = document.body.dataset.token;
const $ = (id) => document.getElementById(id);
const state = {
  fields: [], pictures: [], runs: new Map(), selected: null,
  regions: [], activeRegion: -1, insideBusy: false, insideShown: null,
};
const COLOURS = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6"];

function url(path, params = {}) {
  const q = new URLSearchParams({ ...params, token });
  return `${path}?${q}`;
}

async function api(path, { method = "GET", body, params, type } = {}) {
  const headers = { "X-Gatys-Token": token };
  if (type) headers["Content-Type"] = type;
  const response = await fetch(params ? `${path}?${new URLSearchParams(params)}` : path,
    { method, body, headers });
  let data = null;
  try { data = await response.json(); } catch (e) { data = null; }
  if (!response.ok) throw new Error((data && data.error) || `${response.status} ${response.statusText}`);
  return data;
}

function say(text) {
  const m = $("message");
  m.textContent = text || "";
  m.hidden = !text;
}

async function attempt(action) {
  try { say(""); return await action(); } catch (e) { say(e.message); return undefined; }
}

function element(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "dataset") Object.assign(el.dataset, v);
    else if (k in el) el[k] = v;
    else el.setAttribute(k, v);
  }
  for (const c of children) el.append(c);
  return el;
}

// --- the form, from the options' declarations -------------------------------------------------

function buildForm() {
  for (const f of state.fields) {
    const id = `opt-${f.name}`;
    let input;
    if (f.flag_only) {
      input = element("input", { type: "checkbox", id, title: f.help });
    } else if (f.choices.length) {
      input = element("select", { id, title: f.help },
        element("option", { value: "", textContent: f.default ? `${f.default} (default)` : "(default)" }),
        ...f.choices.map((c) => element("option", { value: c, textContent: c })));
    } else {
      input = element("input", { type: "text", id, placeholder: f.default || "auto", title: f.help,
                                 autocomplete: "off" });
    }
    input.dataset.option = f.name;
    const row = element("div", { className: "option" },
      element("label", { htmlFor: id, textContent: f.flag, title: f.help }), input);
    $(f.main ? "main-options" : "more-options").append(row);
  }
}

function formValues() {
  const values = {};
  for (const input of document.querySelectorAll("[data-option]")) {
    const name = input.dataset.option;
    if (input.type === "checkbox") { if (input.checked) values[name] = true; }
    else if (input.value.trim()) values[name] = input.value.trim();
  }
  return values;
}

function setForm(values) {
  for (const input of document.querySelectorAll("[data-option]")) {
    const v = values[input.dataset.option];
    if (input.type === "checkbox") input.checked = v === true || v === "True" || v === "true";
    else input.value = v === undefined || v === null ? "" : String(v);
  }
}

// --- pictures -----------------------------------------------------------------------------------

// The studio's own outputs: listed in the history strip (runs) or for masks over a painting.
const OWN = /^run-\d{3,}\.png$|^mask-/;

function fillSelect(select, none, names, chosen = select.value) {
  // ``names`` as a select's options after ``none`` (the empty choice), ``chosen`` kept if there
  select.replaceChildren(element("option", { value: "", textContent: none }),
    ...names.map((n) => element("option", { value: n, textContent: n })));
  if (names.includes(chosen)) select.value = chosen;
}

function fillPictures(all, keep = {}) {
  const names = all.filter((n) => !OWN.test(n));
  fillSelect($("photo"), "(choose a photo)", names, keep.photo ?? $("photo").value);
  const ticked = new Set(keep.paintings ?? checkedPaintings());
  $("paintings").replaceChildren(...names.map((n) => element("label", {},
    element("input", { type: "checkbox", value: n, checked: ticked.has(n) }), ` ${n}`)));
  for (const r of state.regions) fillRegionPaintings(r);
}

function checkedPaintings() {
  return [...$("paintings").querySelectorAll("input:checked")].map((i) => i.value);
}

async function refreshPictures(keep) {
  const data = await api("/api/pictures");
  state.pictures = data.pictures;
  fillPictures(data.pictures, keep);
  showHistory(data.history);
}

async function upload(input, kind) {
  const file = input.files[0];
  if (!file) return;
  const stored = await attempt(() => api("/api/upload", { method: "POST", body: file,
    params: { name: file.name }, type: "application/octet-stream" }));
  input.value = "";
  if (!stored) return;
  if (kind === "photo") await refreshPictures({ photo: stored.name });
  else await refreshPictures({ paintings: [...checkedPaintings(), stored.name] });
  if (kind === "photo") loadRegionPhoto();
}

function showHistory(items) {
  $("history").replaceChildren(...items.map((item) => {
    const p = item.parameters;
    const reopen = element("button", { type: "button", className: "reopen", textContent: "Reopen" });
    reopen.addEventListener("click", () => reopenPicture(item));
    const losses = p.final_style_loss ? `L_style ${p.final_style_loss}, L_content ${p.final_content_loss}` : "";
    return element("div", { className: "history-item", dataset: { name: item.name } },
      element("img", { src: url(`/files/${encodeURIComponent(item.name)}`), alt: item.name, loading: "lazy" }),
      element("div", { textContent: item.name }),
      element("div", { className: "quiet", textContent: `${p.size || "?"} px, ${p.iterations_done || "?"} it. ${losses}` }),
      element("a", { href: url(`/files/${encodeURIComponent(item.name)}`, { download: 1 }), textContent: "Download", download: item.name }),
      " ", reopen);
  }));
}

function reopenPicture(item) {
  // A studio run's own record gives its settings back as typed; a PNG from the command line
  // gives those of its text chunks that are options.
  let request = item.record && item.record.request;
  if (!request) {
    const p = item.parameters;
    const options = {};
    for (const f of state.fields) {
      if (f.name in p && !["scales", "style_layer_weights", "content_layer_weights", "style_blend"].includes(f.name)) {
        options[f.name] = p[f.name];
      }
    }
    const base = (s) => s.split("/").pop();
    request = { content: base(p.content || ""), styles: (p.style || "").split(";").filter(Boolean).map(base),
                regions: [], options };
  }
  fillPictures(state.pictures, { photo: request.content, paintings: request.styles });
  setForm(request.options || {});
  loadRegionPhoto();
  reopenRegions(request.regions || []);
  $("preview").src = url(`/files/${encodeURIComponent(item.name)}`);
  $("preview-caption").textContent = `${item.name} (reopened)`;
  $("command").textContent = (item.record && item.record.command) || "";
  state.reopened = item.name;
  $("continue").disabled = false;
}

// --- runs ---------------------------------------------------------------------------------------

async function storeMask(l, name) {
  const stored = await api("/api/masks", { method: "POST", body: await maskBlob(l), params: { name },
                                           type: "image/png" });
  return stored.name;
}

async function regionsForRun() {
  // Each region with paint on the photo: its masks saved as the files --region takes.
  const out = [];
  for (const r of state.regions.filter((region) => region.onPhoto.painted)) {
    if (!r.painting.value) throw new Error(`region ${r.number} has paint but no painting: choose one`);
    const paintingMask = r.onPainting.painted ? await storeMask(r.onPainting, `region-${r.number}-painting`)
      : r.paintingMask.value || null;
    out.push({ mask: await storeMask(r.onPhoto, `region-${r.number}`), painting: r.painting.value,
               painting_mask: paintingMask });
  }
  return out;
}

async function start(extra = {}) {
  await attempt(async () => {
    const regions = await regionsForRun();
    const body = { content: $("photo").value || null, styles: regions.length ? [] : checkedPaintings(),
                   regions, options: { ...formValues(), ...extra } };
    if (!body.content) throw new Error("choose a photo first (or upload one)");
    const run = await api("/api/runs", { method: "POST", body: JSON.stringify(body), type: "application/json" });
    mergeRun(run);
    select(run.id);
    await refreshPictures();
  });
}

function continueRun() {
  // From the picture reopened, or that of the run selected, at full size in one stage (L-BFGS
  // starts a new memory), with the options as the form has them now.
  const run = state.runs.get(state.selected);
  const from = state.reopened || (run && ["done", "stopped"].includes(run.state) ? run.name : null);
  if (!from) return;
  if (!state.reopened) {
    fillPictures(state.pictures, { photo: run.request.content, paintings: run.request.styles });
  }
  start({ init: from, scales: "1", start_size: "" });
}

// A run only moves forward: queued, running, then over. A summary from behind the run's state
// is a reply that arrived after the events did (a stop answered while the run was still
// running, its "over" event already here): it would show a stopped run as running for good.
const STAGE = { queued: 0, running: 1, done: 2, stopped: 2, failed: 2, cancelled: 2 };

function mergeRun(summary) {
  const old = state.runs.get(summary.id) || { history: [] };
  if (old.state && STAGE[summary.state] < STAGE[old.state]) return old;
  const merged = { ...old, ...summary };
  if (!summary.history) merged.history = old.history;
  state.runs.set(summary.id, merged);
  return merged;
}

function select(id) {
  state.selected = id;
  state.reopened = null;
  showQueue();
  showRun();
}

function showQueue() {
  const items = [...state.runs.values()].sort((a, b) => b.id - a.id);
  $("queue").replaceChildren(...items.map((r) => {
    const li = element("li", { className: r.id === state.selected ? "selected" : "", dataset: { run: r.id, state: r.state } },
      `${r.name} `, element("span", { className: `state ${r.state}`, textContent: r.state }),
      r.message ? element("div", { className: "quiet", textContent: r.message }) : "");
    li.addEventListener("click", () => select(r.id));
    return li;
  }));
  const run = state.runs.get(state.selected);
  $("stop").disabled = !run || !["running", "queued"].includes(run.state);
  $("continue").disabled = !(run && ["done", "stopped"].includes(run.state)) && !state.reopened;
}

const fmt = (v) => (typeof v === "number" ? v.toPrecision(4) : "–");

function showRun() {
  const run = state.runs.get(state.selected);
  if (!run) return;
  const last = run.history.length ? run.history[run.history.length - 1] : run.last;
  $("status").textContent = `${run.name}: ${run.state}` + (last ? `, iteration ${last.iteration}` : "")
    + (run.message ? ` (${run.message})` : "");
  $("command").textContent = run.command;
  if (run.preview && $("preview").dataset.version !== `${run.id}:${run.preview}`) {
    $("preview").src = url(`/api/runs/${run.id}/preview.png`, { v: run.preview });
    $("preview").dataset.version = `${run.id}:${run.preview}`;
    $("preview-caption").textContent = last ? `${run.name}, iteration ${last.iteration} (${last.width}×${last.height})` : run.name;
  }
  if (last) {
    const layers = Object.keys(last).filter((k) => k.startsWith("style:"))
      .map((k) => `E_${k.slice(6)} ${fmt(last[k])}`).join("  ");
    $("losses").textContent = `L_total ${fmt(last.total)}  L_content ${fmt(last.content)}  L_style ${fmt(last.style)}  ${layers}`;
  }
  drawCurves($("curves"), run.history, null);
  if (!$("inside").hidden) requestInside();
}

function drawCurves(canvas, history, only) {
  const ctx = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height, pad = 40;
  ctx.clearRect(0, 0, W, H);
  canvas.dataset.points = String(history.length);
  if (!history.length) return;
  const names = only ? [only] : ["total", "content", "style",
    ...Object.keys(history[0]).filter((k) => k.startsWith("style:"))];
  const values = history.flatMap((h) => names.map((n) => h[n])).filter((v) => v > 0);
  if (!values.length) return;
  let lo = Math.floor(Math.log10(Math.min(...values))), hi = Math.ceil(Math.log10(Math.max(...values)));
  if (hi === lo) hi = lo + 1;
  const n = Math.max(history[history.length - 1].iteration, 2);
  const x = (it) => pad + (W - pad - 10) * (it - 1) / (n - 1);
  const y = (v) => H - pad + (pad + 10 - H) * (Math.log10(v) - lo) / (hi - lo);
  ctx.strokeStyle = "#ccc"; ctx.fillStyle = "#666"; ctx.font = "11px sans-serif";
  for (let e = lo; e <= hi; e++) {
    ctx.beginPath(); ctx.moveTo(pad, y(10 ** e)); ctx.lineTo(W - 10, y(10 ** e)); ctx.stroke();
    ctx.fillText(`1e${e}`, 2, y(10 ** e) + 4);
  }
  ctx.fillText(`iteration ${history[history.length - 1].iteration}`, W - 110, H - 8);
  names.forEach((name, i) => {
    ctx.strokeStyle = only ? "#2a5db0" : ["#111", "#2a5db0", "#a8201a", ...COLOURS][i % 10];
    ctx.lineWidth = name === "total" || only ? 2 : 1;
    ctx.beginPath();
    let started = false;
    for (const h of history) {
      if (!(h[name] > 0)) continue;
      if (started) ctx.lineTo(x(h.iteration), y(h[name])); else ctx.moveTo(x(h.iteration), y(h[name]));
      started = true;
    }
    ctx.stroke();
    if (!only) { ctx.fillStyle = ctx.strokeStyle; ctx.fillText(name.replace("style:", "E "), pad + 6 + 78 * (i % 6), 12 + 12 * Math.floor(i / 6)); }
  });
}

function listen() {
  const source = new EventSource(url("/api/events"));
  source.addEventListener("open", () => { $("connection").textContent = "connected"; });
  source.addEventListener("error", () => { $("connection").textContent = "reconnecting…"; });
  source.addEventListener("runs", (e) => {
    for (const r of JSON.parse(e.data).runs) mergeRun(r);
    if (state.selected === null && state.runs.size) state.selected = Math.max(...state.runs.keys());
    showQueue(); showRun();
  });
  source.addEventListener("step", (e) => {
    const data = JSON.parse(e.data);
    const run = state.runs.get(data.run);
    if (!run) return;
    run.history.push(data.step);
    run.preview = data.preview;
    if (run.state !== "running") { run.state = "running"; showQueue(); }
    if (data.run === state.selected) showRun();
  });
  source.addEventListener("over", (e) => {
    const summary = JSON.parse(e.data).run;
    mergeRun(summary);
    showQueue();
    if (summary.id === state.selected) showRun();
    refreshPictures();
  });
}

// --- regions painted on the photo (and optionally on their paintings) ---------------------
// A layer is a mask being painted over a picture: the mask itself (white in the region, off
// screen) and its view (the region's colour, over the picture on screen).

const LONGEST_MASK = 1024; // a mask may be a scaled copy of the picture's shape
const SHOWN_WIDTH = 560; // the pictures' width on the page, which the brush size is in

function layer(area, number, kind) {
  const view = element("canvas", { className: `region-view ${kind}`, dataset: { region: number } });
  $(area).append(view);
  return { mask: document.createElement("canvas"), view, painted: false };
}

function sizeLayer(l, img, clear) {
  if (!img.naturalWidth) return;
  const scale = Math.min(1, LONGEST_MASK / Math.max(img.naturalWidth, img.naturalHeight));
  const w = Math.round(img.naturalWidth * scale), h = Math.round(img.naturalHeight * scale);
  if (!clear && l.mask.width === w && l.mask.height === h) return;
  for (const c of [l.mask, l.view]) { c.width = w; c.height = h; }
  l.view.dataset.size = `${w}x${h}`; // shown from now on (not before: paint would be lost)
  const m = l.mask.getContext("2d");
  m.fillStyle = "#000"; m.fillRect(0, 0, w, h);
  l.view.getContext("2d").clearRect(0, 0, w, h);
  l.painted = false;
}

function paintable(l, colour) {
  let last = null;
  const at = (e) => {
    const box = l.view.getBoundingClientRect();
    return [(e.clientX - box.left) * l.view.width / box.width, (e.clientY - box.top) * l.view.height / box.height];
  };
  const stroke = (from, to) => {
    const erase = $("eraser").checked;
    const width = Number($("brush-size").value) * l.view.width / SHOWN_WIDTH;
    for (const [canvas, paint] of [[l.mask, erase ? "#000" : "#fff"], [l.view, colour]]) {
      const ctx = canvas.getContext("2d");
      ctx.globalCompositeOperation = canvas === l.view && erase ? "destination-out" : "source-over";
      ctx.strokeStyle = paint; ctx.lineWidth = width; ctx.lineCap = "round"; ctx.lineJoin = "round";
      ctx.beginPath(); ctx.moveTo(...from); ctx.lineTo(...to); ctx.stroke();
    }
    if (!erase) l.painted = true;
  };
  l.view.addEventListener("pointerdown", (e) => { l.view.setPointerCapture(e.pointerId); last = at(e); stroke(last, last); });
  l.view.addEventListener("pointermove", (e) => { if (last) { const p = at(e); stroke(last, p); last = p; } });
  for (const end of ["pointerup", "pointercancel"]) l.view.addEventListener(end, () => { last = null; });
}

function drawSaved(l, name, colour) {
  // A saved mask back into a layer: its grey levels as the region's colour's opacity.
  const mask = new Image();
  mask.onload = () => {
    const m = l.mask.getContext("2d");
    m.drawImage(mask, 0, 0, l.mask.width, l.mask.height);
    const pixels = m.getImageData(0, 0, l.mask.width, l.mask.height);
    const [red, green, blue] = [1, 3, 5].map((k) => parseInt(colour.slice(k, k + 2), 16));
    for (let k = 0; k < pixels.data.length; k += 4) {
      const a = pixels.data[k];
      pixels.data[k] = red; pixels.data[k + 1] = green; pixels.data[k + 2] = blue; pixels.data[k + 3] = a;
    }
    l.view.getContext("2d").putImageData(pixels, 0, 0);
    l.painted = true;
  };
  mask.src = url(`/files/${encodeURIComponent(name)}`);
}

function maskBlob(l) {
  // The mask as --region takes it: white in the region, black outside, the edge softened.
  const out = element("canvas", { width: l.mask.width, height: l.mask.height });
  const ctx = out.getContext("2d");
  ctx.fillStyle = "#000"; ctx.fillRect(0, 0, out.width, out.height);
  const soft = Number($("soft-edge").value);
  if (soft > 0) ctx.filter = `blur(${soft}px)`;
  ctx.drawImage(l.mask, 0, 0);
  return new Promise((resolve) => out.toBlob(resolve, "image/png"));
}

function whenLoaded(img, name, then) {
  // ``then`` once ``img`` shows the picture ``name`` (at once if it does already).
  if (img.dataset.name === name && img.complete && img.naturalWidth) then();
  else img.addEventListener("load", then, { once: true });
}

function loadRegionPhoto() {
  const name = $("photo").value;
  const img = $("region-photo");
  if (!name) { img.removeAttribute("src"); delete img.dataset.name; return; }
  if (img.dataset.name === name) return;
  img.dataset.name = name;
  // a photo of another size clears the regions; one of the same size keeps them
  img.onload = () => { for (const r of state.regions) sizeLayer(r.onPhoto, img, false); };
  img.src = url(`/files/${encodeURIComponent(name)}`);
}

function showRegionPainting() {
  // The active region's painting, with its mask over it, in the second picture.
  const r = state.regions[state.activeRegion];
  const img = $("region-painting-photo");
  const name = r ? r.painting.value : "";
  for (const other of state.regions) other.onPainting.view.hidden = other !== r || !name;
  $("painting-area-title").hidden = !name;
  if (!name) { img.removeAttribute("src"); delete img.dataset.name; return; }
  if (img.dataset.name !== name) {
    img.dataset.name = name;
    img.src = url(`/files/${encodeURIComponent(name)}`);
  }
  whenLoaded(img, name, () => sizeLayer(r.onPainting, img, false));
}

function reopenRegions(regions) {
  // A run's regions back: each saved mask drawn into its layer, on the photo and its painting.
  for (const r of state.regions) { r.onPhoto.view.remove(); r.onPainting.view.remove(); }
  state.regions = [];
  $("region-list").replaceChildren();
  if (!regions.length) return;
  whenLoaded($("region-photo"), $("photo").value, () => {
    regions.forEach((saved) => {
      const r = addRegion();
      r.painting.value = saved.painting;
      drawSaved(r.onPhoto, saved.mask, r.colour);
      if (saved.painting_mask && /^mask-/.test(saved.painting_mask)) {
        r.pendingPaintingMask = saved.painting_mask;
      } else {
        r.paintingMask.value = saved.painting_mask || "";
      }
    });
    activateRegion(0);
  });
}

function fillRegionPaintings(r) {
  fillSelect(r.painting, "(choose its painting)", state.pictures);
  fillSelect(r.paintingMask, "(its whole painting, or the part painted below)", state.pictures);
}

function addRegion() {
  const number = state.regions.length + 1;
  const colour = COLOURS[(number - 1) % COLOURS.length];
  const r = { number, colour, onPhoto: layer("canvas-area", number, "on-photo"),
              onPainting: layer("painting-area", number, "on-painting"),
              painting: element("select", { className: "region-painting" }),
              paintingMask: element("select", { className: "region-painting-mask",
                                                title: "a mask over the painting from the folder" }) };
  fillRegionPaintings(r);
  const li = element("li", { dataset: { region: number } },
    element("span", { className: "swatch" }), ` Region ${number} `, r.painting, r.paintingMask);
  li.firstChild.style.background = colour; // through the CSSOM: the page's CSP allows no inline style
  li.addEventListener("click", () => activateRegion(number - 1));
  r.painting.addEventListener("change", () => {
    sizeLayer(r.onPainting, $("region-painting-photo"), true);
    showRegionPainting();
  });
  $("region-list").append(li);
  state.regions.push(r);
  sizeLayer(r.onPhoto, $("region-photo"), true);
  paintable(r.onPhoto, colour);
  paintable(r.onPainting, colour);
  activateRegion(number - 1);
  return r;
}

function activateRegion(i) {
  state.activeRegion = i;
  state.regions.forEach((r, j) => {
    for (const l of [r.onPhoto, r.onPainting]) {
      l.view.classList.toggle("active", i === j);
      l.view.style.pointerEvents = i === j ? "auto" : "none";
    }
    $("region-list").children[j].classList.toggle("active", i === j);
  });
  showRegionPainting();
  const r = state.regions[i];
  if (r && r.pendingPaintingMask) {  // a reopened run's painted painting mask, once sized
    const name = r.pendingPaintingMask;
    r.pendingPaintingMask = null;
    whenLoaded($("region-painting-photo"), r.painting.value, () => drawSaved(r.onPainting, name, r.colour));
  }
}

// --- Inside: the matrices of eqs. 3-4 and the features of eq. 1 --------------------------------

async function requestInside() {
  const run = state.runs.get(state.selected);
  if (!run || !run.preview || state.insideBusy) return;
  const layers = $("inside-layer");
  if ([...layers.options].map((o) => o.value).join() !== run.style_layers.join()) {  // the run's own
    const kept = layers.value;
    layers.replaceChildren(...run.style_layers.map((l) => element("option", { value: l, textContent: l })));
    if (run.style_layers.includes(kept)) layers.value = kept;
  }
  const layer = layers.value;
  const regions = run.request.regions.length;
  $("inside-region-label").hidden = !regions;
  if (regions && $("inside-region").options.length !== regions) {
    $("inside-region").replaceChildren(...run.request.regions.map((r, i) =>
      element("option", { value: i + 1, textContent: `${i + 1}: ${r.painting}` })));
  }
  const key = `${run.id}:${run.preview}:${layer}:${$("inside-region").value}`;
  if (key === state.insideShown) return;
  state.insideBusy = true;
  try {
    const params = { layer };
    if (regions) params.region = $("inside-region").value;
    const d = await api(`/api/runs/${run.id}/inside`, { params });
    state.insideShown = key;
    for (const k of ["A", "G", "D"]) $(`inside-${k}`).src = d[k];
    $("inside-status").textContent = `${run.name}, ${d.layer}: N_l = ${d.N} filters, M_l = ${d.M} positions, `
      + `E_l = ${fmt(d.E)}; colours up to ${fmt(d.scale)}, |G − A| up to ${fmt(d.spread)} `
      + `(the ${d.clip}th percentiles; larger entries at the end colour)`;
    $("inside-content-title").textContent = `Content layer ${d.content.layer} (${d.content.shape[1]}×${d.content.shape[0]}): `
      + "the photo's P^l (top) and the picture's F^l (below), in the channels that vary most over the photo, eq. 1";
    $("inside-content").replaceChildren(...d.content.maps.map((m) => element("figure", { className: "featurepair" },
      element("img", { className: "featuremap", src: m.photo, alt: `P channel ${m.channel}` }),
      element("img", { className: "featuremap", src: m.picture, alt: `F channel ${m.channel}` }),
      element("figcaption", { textContent: `channel ${m.channel}` }))));
    drawCurves($("inside-E"), run.history, `style:${d.layer}`);
    $("inside-E-caption").textContent = `E_l of ${d.layer} over the iterations, eq. 4`;
  } catch (e) {
    $("inside-status").textContent = e.message;
  } finally {
    state.insideBusy = false;
  }
}

function showTab(name) {
  for (const b of document.querySelectorAll(".tabs button")) b.classList.toggle("active", b.dataset.tab === name);
  for (const t of document.querySelectorAll(".tab")) t.hidden = t.id !== name;
  if (name === "regions") { loadRegionPhoto(); if (!state.regions.length) addRegion(); }
  if (name === "inside") requestInside();
}

// --- start --------------------------------------------------------------------------------------

async function main() {
  const options = await attempt(() => api("/api/options"));
  if (!options) return;
  state.fields = options.fields;
  $("folder").textContent = options.folder;
  buildForm();
  $("inside-layer").replaceChildren(...options.style_layers.map((l) => element("option", { value: l, textContent: l })));
  await attempt(() => refreshPictures());
  $("upload-photo").addEventListener("change", (e) => upload(e.target, "photo"));
  $("upload-painting").addEventListener("change", (e) => upload(e.target, "painting"));
  $("photo").addEventListener("change", loadRegionPhoto);
  $("start").addEventListener("click", () => start());
  $("stop").addEventListener("click", () => attempt(async () => {
    if (state.selected !== null) mergeRun(await api(`/api/runs/${state.selected}/stop`, { method: "POST" }));
    showQueue();
  }));
  $("continue").addEventListener("click", continueRun);
  for (const b of document.querySelectorAll(".tabs button")) b.addEventListener("click", () => showTab(b.dataset.tab));
  $("add-region").addEventListener("click", addRegion);
  $("clear-region").addEventListener("click", () => {
    const r = state.regions[state.activeRegion];
    if (r) { sizeLayer(r.onPhoto, $("region-photo"), true); sizeLayer(r.onPainting, $("region-painting-photo"), true); }
  });
  $("soft-edge").addEventListener("input", () => { $("soft-edge-value").textContent = $("soft-edge").value; });
  $("inside-layer").addEventListener("change", requestInside);
  $("inside-region").addEventListener("change", requestInside);
  listen();
}

main();
