// Case viewer: axial, coronal and sagittal slices from /v1/cases/{id}/slice.png, the tumour box,
// a crosshair that links the three planes, and the case's clinical fields.
//
// Geometry. The server shows every plane in radiological convention whatever the volume's
// direction matrix (mamamia_server._volume_reads.plane_layout): axial = anterior up, patient right
// on the viewer's left; coronal = superior up, patient right on the left; sagittal = superior
// up, anterior on the left. planeLayout() below is the same computation, so the page knows for
// each plane which array axis (of z, y, x) runs down the rows and across the columns, and
// whether it is flipped; it maps the half-open voxel box tumor_bbox_min_zyx..max_zyx and the
// crosshair onto the picture with it. The slice `index` is the array index on the plane's
// normal axis (never flipped). tests/test_web.py checks the drawn box against the server's
// own mask outline in the PNG.

import { ApiProblem, getBlob, getJSON } from "./api.js";
import { renderKinetics } from "./kinetics.js";
import { clear, el, formatValue, showInline, svg } from "./ui.js";

const $ = (id) => document.getElementById(id);

// plane -> [normal LPS axis, [row LPS axis, sign], [col LPS axis, sign]] (L=0, P=1, S=2).
const PLANES = {
  axial: [2, [1, +1], [0, +1]],
  coronal: [1, [2, -1], [0, +1]],
  sagittal: [0, [2, -1], [1, +1]],
};
const PLANE_NAMES = { axial: "Axial", coronal: "Coronal", sagittal: "Sagittal" };
// Labels of the picture's edges: [top, bottom, left, right] (radiological convention).
const EDGE_LABELS = {
  axial: ["A", "P", "R", "L"],
  coronal: ["S", "I", "R", "L"],
  sagittal: ["S", "I", "A", "P"],
};

function permutations(items) {
  if (items.length <= 1) return [items];
  return items.flatMap((item, i) => permutations([...items.slice(0, i), ...items.slice(i + 1)]).map((rest) => [item, ...rest]));
}

// For image axes i, j, k (x, y, z): the LPS axis each points along most, and its sign.
function lpsAxes(direction) {
  const m = (r, c) => direction[r * 3 + c];
  let best = null;
  let bestScore = -Infinity;
  for (const perm of permutations([0, 1, 2])) {
    const score = perm.reduce((sum, r, c) => sum + Math.abs(m(r, c)), 0);
    if (score > bestScore + 1e-12) {
      best = perm;
      bestScore = score;
    }
  }
  const signs = best.map((r, c) => (m(r, c) >= 0 ? 1 : -1));
  return { lps: best, signs };
}

// Which array axes (0=z, 1=y, 2=x) make the plane's normal, rows and columns, and the flips.
export function planeLayout(direction, plane) {
  const { lps, signs } = lpsAxes(direction);
  const [normal, [rowLps, rowSign], [colLps, colSign]] = PLANES[plane];
  const byLps = {};
  lps.forEach((l, c) => (byLps[l] = c));
  const n = byLps[normal];
  const r = byLps[rowLps];
  const c = byLps[colLps];
  return {
    normalAxis: 2 - n,
    rowAxis: 2 - r,
    colAxis: 2 - c,
    flipRows: signs[r] !== rowSign,
    flipCols: signs[c] !== colSign,
  };
}

// Display interval [a, b) of the array interval [lo, hi) on an axis of n voxels.
function displayRange(lo, hi, n, flip) {
  return flip ? [n - hi, n - lo] : [lo, hi];
}

const KEY_FIELDS = [
  "patient_id", "dataset", "split", "age", "age_group", "menopause", "ethnicity", "ethnicity_group",
  "tumor_subtype", "tumor_subtype_group", "pcr", "hr", "er", "pr", "her2", "nottingham_grade",
  "bilateral_mri", "num_phases", "field_strength", "manufacturer", "scanner_model",
];

const CACHE_SIZE = 120;

function isGrey(data, i) {
  return data[i] === data[i + 1] && data[i + 1] === data[i + 2];
}

// Both masks at once: the server outlines one mask per picture (pure colours on grey), so take
// the expert picture and copy in the automatic outline where the expert one has none.
async function compositeOverlays(expertBlob, automaticBlob) {
  const [a, b] = await Promise.all([createImageBitmap(expertBlob), createImageBitmap(automaticBlob)]);
  const canvas = document.createElement("canvas");
  canvas.width = a.width;
  canvas.height = a.height;
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  ctx.drawImage(b, 0, 0);
  const auto = ctx.getImageData(0, 0, a.width, a.height);
  ctx.drawImage(a, 0, 0);
  const out = ctx.getImageData(0, 0, a.width, a.height);
  for (let i = 0; i < out.data.length; i += 4) {
    if (!isGrey(auto.data, i) && isGrey(out.data, i)) {
      out.data[i] = auto.data[i];
      out.data[i + 1] = auto.data[i + 1];
      out.data[i + 2] = auto.data[i + 2];
    }
  }
  ctx.putImageData(out, 0, 0);
  return new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
}

class View {
  constructor(viewer, plane) {
    this.viewer = viewer;
    this.plane = plane;
    this.seq = 0;
    this.url = null;
    const name = PLANE_NAMES[plane];
    const [top, bottom, left, right] = EDGE_LABELS[plane];
    this.label = el("span", { class: "slice-label muted", "aria-live": "off" });
    this.img = el("img", { alt: `${name} slice`, draggable: "false" });
    this.box = svg("rect", { class: "box", visibility: "hidden" });
    this.crossH = svg("line", { class: "cross" });
    this.crossV = svg("line", { class: "cross" });
    this.overlay = svg("svg", { class: "overlay", preserveAspectRatio: "none", "aria-hidden": "true" }, this.box, this.crossH, this.crossV);
    this.frame = el("div", { class: "frame" }, this.img, this.overlay);
    this.frame.style.position = "relative";
    this.loading = el("span", { class: "loading", text: "" });
    this.stage = el(
      "div",
      { class: "stage", tabindex: "0", role: "group", "aria-roledescription": "slice view", "aria-label": `${name} view: arrow keys or the wheel change the slice`, dataset: { plane } },
      this.frame,
      el("span", { class: "orient o-top", text: top }),
      el("span", { class: "orient o-bottom", text: bottom }),
      el("span", { class: "orient o-left", text: left }),
      el("span", { class: "orient o-right", text: right }),
      this.loading,
    );
    const sliderId = `slider-${plane}`;
    this.slider = el("input", { type: "range", id: sliderId, min: "0", max: "0", value: "0", step: "1" });
    this.root = el(
      "div",
      { class: "view", id: `view-${plane}` },
      el(
        "div",
        { class: "view-head" },
        el("span", { class: "plane", text: name }),
        this.label,
        (this.enlarge = el("button", {
          type: "button",
          class: "enlarge ghost",
          "aria-pressed": "false",
          "aria-label": `Enlarge the ${name.toLowerCase()} view`,
          title: "Enlarge / back to three views",
          text: "⤢",
        })),
      ),
      this.stage,
      el("label", { class: "sr-only", for: sliderId, text: `${name} slice` }),
      this.slider,
    );
    this.bindEvents();
  }

  bindEvents() {
    this.enlarge.addEventListener("click", () => this.viewer.toggleSingle(this.plane));
    this.slider.addEventListener("input", () => this.viewer.setSlice(this.plane, Number(this.slider.value)));
    this.stage.addEventListener("keydown", (event) => {
      const steps = { ArrowUp: 1, ArrowRight: 1, ArrowDown: -1, ArrowLeft: -1, PageUp: 10, PageDown: -10 }[event.key];
      if (steps !== undefined) {
        event.preventDefault();
        this.viewer.moveSlice(this.plane, steps);
      } else if (event.key === "Home" || event.key === "End") {
        event.preventDefault();
        this.viewer.setSlice(this.plane, event.key === "Home" ? 0 : Infinity);
      }
    });
    let wheel = 0;
    this.stage.addEventListener(
      "wheel",
      (event) => {
        event.preventDefault();
        const dy = event.deltaMode === 1 ? event.deltaY * 40 : event.deltaY;
        wheel += dy;
        // A mouse notch (>= 50 px) is one slice; small trackpad deltas add up to one.
        if (Math.abs(wheel) >= 100 || Math.abs(dy) >= 50) {
          const steps = Math.sign(wheel) * Math.max(1, Math.min(5, Math.trunc(Math.abs(wheel) / 100)));
          wheel = 0;
          this.viewer.moveSlice(this.plane, steps);
        }
      },
      { passive: false },
    );
    this.stage.addEventListener("pointerleave", () => this.viewer.showReadout());
    this.stage.addEventListener("focus", () => this.stage.classList.add("focused"));
    this.stage.addEventListener("blur", () => this.stage.classList.remove("focused"));
    // Click: move the other planes to this point. Shift+drag: window/level.
    let drag = null;
    this.stage.addEventListener("pointerdown", (event) => {
      this.stage.focus();
      if (event.shiftKey) {
        drag = { x: event.clientX, y: event.clientY, ...this.viewer.currentWindow() };
        this.stage.setPointerCapture(event.pointerId);
        event.preventDefault();
      }
    });
    this.stage.addEventListener("pointermove", (event) => {
      if (!drag) {
        const rect = this.frame.getBoundingClientRect();
        const fx = (event.clientX - rect.left) / rect.width;
        const fy = (event.clientY - rect.top) / rect.height;
        if (rect.width && fx >= 0 && fx < 1 && fy >= 0 && fy < 1) this.viewer.showReadout(this.viewer.voxelAt(this.plane, fy, fx), "pointer");
        return;
      }
      if (!drag.window) return;
      const scale = drag.window / 200;
      const windowWidth = Math.max(1, drag.window + (event.clientX - drag.x) * scale);
      const level = drag.level - (event.clientY - drag.y) * scale;
      this.viewer.setWindow(windowWidth, level, { live: true });
    });
    this.stage.addEventListener("pointerup", (event) => {
      if (drag) {
        drag = null;
        this.viewer.setWindow(null, null, { commit: true });
        return;
      }
      const rect = this.frame.getBoundingClientRect();
      if (!rect.width || !rect.height) return;
      const fx = (event.clientX - rect.left) / rect.width;
      const fy = (event.clientY - rect.top) / rect.height;
      if (fx < 0 || fx > 1 || fy < 0 || fy > 1) return;
      this.viewer.pointAt(this.plane, fy, fx);
    });
  }

  // Size the frame to the picture's physical aspect inside the square stage.
  fit() {
    const g = this.viewer.geometry;
    if (!g) return;
    const lay = g.layouts[this.plane];
    const rows = g.shape[lay.rowAxis] * g.spacing[lay.rowAxis];
    const cols = g.shape[lay.colAxis] * g.spacing[lay.colAxis];
    const side = this.stage.clientWidth || 300;
    const scale = side / Math.max(rows, cols);
    this.frame.style.width = `${Math.round(cols * scale)}px`;
    this.frame.style.height = `${Math.round(rows * scale)}px`;
    this.img.style.width = "100%";
    this.img.style.height = "100%";
    this.overlay.style.inset = "0";
    this.overlay.setAttribute("width", "100%");
    this.overlay.setAttribute("height", "100%");
    this.overlay.setAttribute("viewBox", `0 0 ${g.shape[lay.colAxis]} ${g.shape[lay.rowAxis]}`);
  }

  drawMarks() {
    const g = this.viewer.geometry;
    if (!g) return;
    const lay = g.layouts[this.plane];
    const nr = g.shape[lay.rowAxis];
    const nc = g.shape[lay.colAxis];
    const k = this.viewer.point[lay.normalAxis];
    const box = this.viewer.bbox;
    if (box && this.viewer.showBox) {
      const [r0, r1] = displayRange(box.min[lay.rowAxis], box.max[lay.rowAxis], nr, lay.flipRows);
      const [c0, c1] = displayRange(box.min[lay.colAxis], box.max[lay.colAxis], nc, lay.flipCols);
      const inside = k >= box.min[lay.normalAxis] && k < box.max[lay.normalAxis];
      Object.entries({ x: c0, y: r0, width: c1 - c0, height: r1 - r0 }).forEach(([a, v]) => this.box.setAttribute(a, v));
      this.box.setAttribute("visibility", "visible");
      this.box.style.opacity = inside ? "1" : "0.35";
      this.box.dataset.inside = inside ? "true" : "false";
    } else {
      this.box.setAttribute("visibility", "hidden");
    }
    const row = lay.flipRows ? nr - 1 - this.viewer.point[lay.rowAxis] : this.viewer.point[lay.rowAxis];
    const col = lay.flipCols ? nc - 1 - this.viewer.point[lay.colAxis] : this.viewer.point[lay.colAxis];
    Object.entries({ x1: 0, x2: nc, y1: row + 0.5, y2: row + 0.5 }).forEach(([a, v]) => this.crossH.setAttribute(a, v));
    Object.entries({ x1: col + 0.5, x2: col + 0.5, y1: 0, y2: nr }).forEach(([a, v]) => this.crossV.setAttribute(a, v));
    const n = g.shape[lay.normalAxis];
    this.slider.max = String(n - 1);
    this.slider.value = String(k);
    // 0-based, as the readout, the API's index= and the arrays: slices 0 to n - 1.
    this.label.textContent = `slice ${k} of 0–${n - 1}`;
    this.stage.dataset.index = String(k);
  }

  async render() {
    const v = this.viewer;
    const g = v.geometry;
    if (!g) return;
    const lay = g.layouts[this.plane];
    const k = v.point[lay.normalAxis];
    this.drawMarks();
    const side = Math.max(128, Math.min(1024, Math.ceil(((this.stage.clientWidth || 320) * (window.devicePixelRatio || 1)) / 64) * 64));
    const base = { axis: this.plane, index: k, phase: v.phase, size: side };
    if (v.window !== null && v.level !== null) Object.assign(base, { window: v.window, level: v.level });
    const overlays = v.overlays();
    const seq = ++this.seq;
    this.loading.textContent = "loading…";
    this.stage.setAttribute("aria-busy", "true");
    try {
      const picture = await v.picture(base, overlays);
      if (seq !== this.seq) return;
      this.img.src = picture.url;
      this.url = picture.url;
      this.img.dataset.request = picture.key;
      this.stage.dataset.loaded = String(Number(this.stage.dataset.loaded || 0) + 1);
      if (picture.low !== null && picture.high !== null) v.showAutoWindow(picture.low, picture.high);
      showInline($("case-problem"), null);
      // Scrolling: fetch the next slice in the same direction while this one is looked at.
      const ahead = k + (v.travel[this.plane] || 0);
      if (ahead !== k && ahead >= 0 && ahead < g.shape[lay.normalAxis]) {
        v.picture({ ...base, index: ahead }, overlays).catch(() => {});
      }
    } catch (error) {
      if (seq !== this.seq || (error && error.name === "AbortError")) return;
      showInline($("case-problem"), error);
    } finally {
      if (seq === this.seq) {
        this.loading.textContent = "";
        this.stage.removeAttribute("aria-busy");
      }
    }
  }
}

export class Viewer {
  constructor({ onProblem }) {
    this.onProblem = onProblem;
    this.caseId = null;
    this.geometry = null;
    this.bbox = null;
    this.point = [0, 0, 0];
    this.phase = null; // first open: phase 1 (the first post-contrast) where there is one
    this.window = null;
    this.level = null;
    this.showBox = true;
    this.caseList = [];
    this.cache = new Map(); // request key -> {url, low, high}
    this.pending = new Map(); // request key -> the promise of a picture being fetched
    this.openSeq = 0;
    this.single = null;
    this.travel = {}; // plane -> +1 / -1: the way its slices last moved (for prefetching)
    const views = clear($("views"));
    this.views = Object.keys(PLANES).map((plane) => new View(this, plane));
    for (const view of this.views) views.append(view.root);
    this.bindControls();
    new ResizeObserver(() => this.layout()).observe(views);
  }

  bindControls() {
    $("case-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const id = $("case-id").value.trim().toUpperCase();
      if (id) {
        history.replaceState(null, "", "#case=" + encodeURIComponent(id));
        this.open(id);
      }
    });
    $("case-prev").addEventListener("click", () => this.step(-1));
    $("case-next").addEventListener("click", () => this.step(1));
    $("phase").addEventListener("change", () => {
      this.phase = $("phase").value;
      this.window = this.level = null; // each image has its own auto window
      $("window").value = $("level").value = "";
      this.renderAll();
    });
    const wl = () => {
      if ($("window").value === "" && $("level").value === "") {
        this.window = this.level = null;
        this.renderAll();
        return;
      }
      // One of the two typed: the other keeps its current (or automatic) value.
      const now = this.currentWindow();
      const w = $("window").value === "" ? now.window : parseFloat($("window").value);
      const l = $("level").value === "" ? now.level : parseFloat($("level").value);
      if (Number.isFinite(w) && w > 0 && Number.isFinite(l)) {
        this.window = round(w);
        this.level = round(l);
        $("window").value = String(this.window);
        $("level").value = String(this.level);
        this.renderAll();
      }
    };
    $("window").addEventListener("change", wl);
    $("level").addEventListener("change", wl);
    $("wl-auto").addEventListener("click", () => {
      $("window").value = $("level").value = "";
      this.window = this.level = null;
      this.renderAll();
    });
    $("ov-expert").addEventListener("change", () => this.renderAll());
    $("ov-automatic").addEventListener("change", () => this.renderAll());
    $("goto-tumour").addEventListener("click", () => {
      if (!this.geometry) return;
      this.point = this.centre();
      this.renderAll();
      this.showReadout();
    });
    $("show-box").addEventListener("change", () => {
      this.showBox = $("show-box").checked;
      for (const view of this.views) view.drawMarks();
    });
  }

  // Show one plane alone, large (again: back to three).
  toggleSingle(plane) {
    this.single = this.single === plane ? null : plane;
    $("views").classList.toggle("single", this.single !== null);
    for (const view of this.views) {
      const big = view.plane === this.single;
      view.root.classList.toggle("big", big);
      view.enlarge.setAttribute("aria-pressed", big ? "true" : "false");
    }
    requestAnimationFrame(() => {
      this.layout();
      if (this.single) this.views.find((v) => v.plane === this.single).render();
    });
  }

  overlays() {
    return ["expert", "automatic"].filter((kind) => $(`ov-${kind}`).checked);
  }

  setCaseList(ids) {
    this.caseList = ids;
  }

  step(delta) {
    if (!this.caseList.length) return;
    const at = this.caseList.indexOf(this.caseId);
    const next = this.caseList[(at + delta + this.caseList.length) % this.caseList.length];
    history.replaceState(null, "", "#case=" + encodeURIComponent(next));
    this.open(next);
  }

  reload() {
    if (this.caseId) this.open(this.caseId);
  }

  layout() {
    if ($("panel-case").hidden || !this.geometry) return;
    for (const view of this.views) {
      view.fit();
      view.drawMarks();
    }
  }

  currentWindow() {
    if (this.window !== null) return { window: this.window, level: this.level };
    return { window: this.autoWindow ? this.autoWindow[1] - this.autoWindow[0] : null, level: this.autoWindow ? (this.autoWindow[0] + this.autoWindow[1]) / 2 : null };
  }

  showAutoWindow(low, high) {
    if (this.window !== null) return;
    this.autoWindow = [low, high];
    const w = high - low;
    $("window").placeholder = `auto ${round(w)}`;
    $("level").placeholder = `auto ${round(low + w / 2)}`;
  }

  setWindow(windowWidth, level, { live = false, commit = false } = {}) {
    if (windowWidth !== null) {
      this.window = round(windowWidth);
      this.level = round(level);
      $("window").value = String(this.window);
      $("level").value = String(this.level);
    }
    if (live) {
      if (!this.wlFrame) {
        this.wlFrame = requestAnimationFrame(() => {
          this.wlFrame = 0;
          this.renderAll();
        });
      }
    }
    if (commit) this.renderAll();
  }

  // One picture: cached blob URL by request; both overlays are composited on a canvas.
  async picture(base, overlays) {
    // The catalog version is in the key: a new ingest may change the voxels.
    const key = JSON.stringify([this.version, this.caseId, base, overlays]);
    const hit = this.cache.get(key);
    if (hit) {
      this.cache.delete(key);
      this.cache.set(key, hit);
      return hit;
    }
    const pending = this.pending.get(key);
    if (pending) return pending;
    const promise = this.fetchPicture(key, base, overlays).finally(() => this.pending.delete(key));
    this.pending.set(key, promise);
    return promise;
  }

  async fetchPicture(key, base, overlays) {
    const path = `v1/cases/${encodeURIComponent(this.caseId)}/slice.png`;
    const fetchOne = (overlay) => getBlob(path, { query: { ...base, overlay }, accept: "image/png" });
    let blob;
    let headers;
    if (overlays.length === 2) {
      const [a, b] = await Promise.all([fetchOne("expert"), fetchOne("automatic")]);
      blob = await compositeOverlays(a.blob, b.blob);
      headers = a.headers;
    } else {
      ({ blob, headers } = await fetchOne(overlays[0]));
    }
    const low = parseFloat(headers.get("X-Window-Low"));
    const high = parseFloat(headers.get("X-Window-High"));
    const entry = { key, url: URL.createObjectURL(blob), low: Number.isFinite(low) ? low : null, high: Number.isFinite(high) ? high : null };
    this.cache.set(key, entry);
    while (this.cache.size > CACHE_SIZE) {
      const [oldKey, old] = this.cache.entries().next().value;
      this.cache.delete(oldKey);
      if (!this.views.some((view) => view.url === old.url)) URL.revokeObjectURL(old.url);
    }
    return entry;
  }

  renderAll() {
    for (const view of this.views) view.render();
  }

  setSlice(plane, index) {
    if (!this.geometry) return;
    const lay = this.geometry.layouts[plane];
    const n = this.geometry.shape[lay.normalAxis];
    const k = Math.max(0, Math.min(n - 1, Number.isFinite(index) ? Math.round(index) : n - 1));
    if (k === this.point[lay.normalAxis]) return;
    this.travel[plane] = Math.sign(k - this.point[lay.normalAxis]);
    this.point[lay.normalAxis] = k;
    this.showReadout();
    for (const view of this.views) {
      if (view.plane === plane) view.render();
      else view.drawMarks();
    }
  }

  moveSlice(plane, delta) {
    if (!this.geometry) return;
    const lay = this.geometry.layouts[plane];
    this.setSlice(plane, this.point[lay.normalAxis] + delta);
  }

  // The voxel (z, y, x) under fraction (fy, fx) of a plane's picture, on its current slice.
  voxelAt(plane, fy, fx) {
    const g = this.geometry;
    const lay = g.layouts[plane];
    const nr = g.shape[lay.rowAxis];
    const nc = g.shape[lay.colAxis];
    const dr = Math.min(nr - 1, Math.floor(fy * nr));
    const dc = Math.min(nc - 1, Math.floor(fx * nc));
    const voxel = [...this.point];
    voxel[lay.rowAxis] = lay.flipRows ? nr - 1 - dr : dr;
    voxel[lay.colAxis] = lay.flipCols ? nc - 1 - dc : dc;
    return voxel;
  }

  // "voxel (z, y, x) … · LPS mm (x, y, z) …": origin + D · (spacing ⊙ (i, j, k)).
  showReadout(voxel = this.point, what = "crosshair") {
    const g = this.geometry;
    if (!g) return;
    const ijk = [voxel[2], voxel[1], voxel[0]];
    const sp = [g.spacing[2], g.spacing[1], g.spacing[0]];
    const d = g.direction;
    const mm = [0, 1, 2].map((r) => g.origin[r] + [0, 1, 2].reduce((sum, c) => sum + d[r * 3 + c] * sp[c] * ijk[c], 0));
    const inBox = this.bbox && voxel.every((v, a) => v >= this.bbox.min[a] && v < this.bbox.max[a]);
    $("readout").textContent = `${what}: voxel (z, y, x) = (${voxel.join(", ")}) · LPS (x, y, z) = (${mm.map((v) => v.toFixed(1)).join(", ")}) mm${inBox ? " · in the tumour box" : ""}`;
  }

  // A click at fraction (fy, fx) of a plane's picture: move the other two planes there.
  pointAt(plane, fy, fx) {
    const g = this.geometry;
    if (!g) return;
    const lay = g.layouts[plane];
    const voxel = this.voxelAt(plane, fy, fx);
    this.point[lay.rowAxis] = voxel[lay.rowAxis];
    this.point[lay.colAxis] = voxel[lay.colAxis];
    this.showReadout();
    for (const view of this.views) {
      if (view.plane === plane) view.drawMarks();
      else view.render();
    }
  }

  async open(caseId) {
    const seq = ++this.openSeq;
    this.caseId = caseId;
    $("case-id").value = caseId;
    $("case-title").textContent = `${caseId}: loading…`;
    showInline($("case-problem"), null);
    let fields;
    let volumes;
    try {
      [fields, volumes] = await Promise.all([
        getJSON(`v1/cases/${encodeURIComponent(caseId)}`),
        getJSON(`v1/cases/${encodeURIComponent(caseId)}/volumes`),
      ]);
    } catch (error) {
      if (seq !== this.openSeq) return;
      $("case-title").textContent = caseId;
      // Never leave the previous case's pictures and fields under this case's error.
      $("case-content").hidden = true;
      clear($("fields"));
      showInline($("case-problem"), error);
      return;
    }
    if (seq !== this.openSeq) return;
    $("case-content").hidden = false;
    this.caseId = fields.patient_id;
    this.version = fields.catalog_version;
    $("case-id").value = fields.patient_id;
    const images = volumes.volumes.filter((v) => v.kind === "image").sort((a, b) => a.phase - b.phase);
    if (!images.length) {
      showInline($("case-problem"), new ApiProblem({ title: "No image", detail: `case ${caseId} has no image volume` }));
      return;
    }
    const first = images[0];
    const direction = first.direction && first.direction.length === 9 ? first.direction : [1, 0, 0, 0, 1, 0, 0, 0, 1];
    const shape = first.shape; // (z, y, x)
    const spacing = [...first.spacing_xyz].reverse(); // to (z, y, x)
    const layouts = Object.fromEntries(Object.keys(PLANES).map((p) => [p, planeLayout(direction, p)]));
    const origin = first.origin_xyz && first.origin_xyz.length === 3 ? first.origin_xyz : [0, 0, 0];
    this.geometry = { shape, spacing, layouts, direction, origin, orientation: first.orientation };
    const f = fields.fields;
    const lo = f.tumor_bbox_min_zyx;
    const hi = f.tumor_bbox_max_zyx;
    this.bbox = Array.isArray(lo) && Array.isArray(hi) && lo.length === 3 && hi.length === 3 ? { min: lo, max: hi } : null;
    // Start at the tumour's centre (else the middle of the volume).
    this.point = this.centre();
    $("goto-tumour").disabled = !this.bbox;
    this.renderPhases(images);
    this.renderFields(fields.fields, first);
    renderKinetics(fields.fields);
    const orientation = first.orientation ? ` · ${first.orientation}` : "";
    $("case-title").textContent = `${this.caseId} · ${shape.join("×")} (z×y×x)${orientation}`;
    $("case-title").dataset.case = this.caseId;
    $("show-box").parentElement.title = this.bbox ? "" : "This case has no tumour box";
    this.layout();
    this.renderAll();
    this.showReadout();
  }

  // The tumour box's centre voxel, else the volume's.
  centre() {
    const shape = this.geometry.shape;
    if (!this.bbox) return shape.map((n) => Math.floor(n / 2));
    return this.bbox.min.map((a, i) => Math.floor((a + this.bbox.max[i] - 1) / 2));
  }

  renderPhases(images) {
    const select = clear($("phase"));
    for (const image of images) {
      const t = image.acquisition_time_s;
      const when = image.phase === 0 ? "pre" : t !== null && t !== undefined ? `${Math.round(t)} s` : "post";
      select.append(el("option", { value: String(image.phase), text: `Phase ${image.phase} (${when})` }));
    }
    if (images.length >= 2) select.append(el("option", { value: "sub", text: "Subtraction (1 − 0)" }));
    const keep = [...select.options].some((o) => o.value === this.phase);
    if (!keep) this.phase = images.length >= 2 ? "1" : "0";
    select.value = this.phase;
  }

  renderFields(fields, image) {
    const list = clear($("fields"));
    const add = (name, value) => {
      const text = formatValue(value);
      list.append(el("dt", { text: name }), el("dd", { class: value === null || value === undefined ? "null" : "", text }));
    };
    list.append(el("div", { class: "group", text: "Key fields" }));
    for (const name of KEY_FIELDS) if (name in fields) add(name, fields[name]);
    list.append(el("div", { class: "group", text: "Image geometry" }));
    // One axis order on screen: array order (z, y, x), as the slices and the readout's voxel.
    add("shape (z, y, x)", image.shape);
    add("spacing (z, y, x) mm", [...image.spacing_xyz].reverse());
    add("orientation", image.orientation);
    list.append(el("div", { class: "group", text: "All other fields" }));
    for (const [name, value] of Object.entries(fields)) if (!KEY_FIELDS.includes(name)) add(name, value);
  }
}

function round(value) {
  const abs = Math.abs(value);
  const digits = abs >= 100 ? 0 : abs >= 1 ? 1 : 3;
  return Number(value.toFixed(digits));
}
