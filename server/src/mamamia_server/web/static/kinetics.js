// The case viewer's kinetics panel: the tumour's mean enhancement curve (kinetic_curve against
// acquisition_times, or the phase number when the times are missing) as a small SVG chart, the
// early and late phases the kinetic features use marked on it, and the kinetic and shape values.
// Definitions: docs/features.md.

import { clear, el, formatValue, svg } from "./ui.js";

const $ = (id) => document.getElementById(id);

// [column, label, digits]
const VALUES = [
  ["pe_peak", "Peak PE (%)", 0],
  ["pe_mean", "Mean PE (%)", 0],
  ["ser_mean", "Mean SER", 2],
  ["ftv_cm3", "FTV (cm³)", 2],
  ["persistent_fraction", "Persistent", 2],
  ["plateau_fraction", "Plateau", 2],
  ["washout_fraction", "Washout", 2],
  ["shape_volume_cm3", "Volume (cm³)", 2],
  ["shape_feret_mm", "Max diameter (mm)", 1],
  ["shape_sphericity", "Sphericity", 2],
  ["shape_components", "Components", 0],
];

function fixed(value, digits) {
  return typeof value === "number" && Number.isFinite(value) ? value.toFixed(digits) : formatValue(value);
}

// The curve's points: x from acquisition_times when there is one per phase, else phase numbers.
export function curvePoints(fields) {
  const curve = Array.isArray(fields.kinetic_curve) ? fields.kinetic_curve : [];
  const times = Array.isArray(fields.acquisition_times) ? fields.acquisition_times : null;
  const useTimes = times !== null && times.length === curve.length && times.every((t) => typeof t === "number");
  return {
    useTimes,
    points: curve.map((y, i) => ({ x: useTimes ? times[i] - times[0] : i, y, phase: i })),
  };
}

export function renderKinetics(fields) {
  const figure = $("kinetics");
  const body = clear($("kinetics-chart"));
  const values = clear($("kinetics-values"));
  const { useTimes, points } = curvePoints(fields);
  figure.hidden = points.length === 0;
  if (!points.length) return;
  const width = 300;
  const height = 170;
  const left = 48;
  const right = 10;
  const top = 12;
  const bottom = 34;
  const xs = points.map((p) => p.x);
  const ys = points.map((p) => p.y);
  const x0 = Math.min(...xs);
  const x1 = Math.max(...xs, x0 + 1);
  const yMin = Math.min(...ys);
  const yMax = Math.max(...ys, yMin + 1);
  const pad = (yMax - yMin) * 0.1;
  const y0 = Math.max(0, yMin - pad);
  const y1 = yMax + pad;
  const px = (x) => left + ((x - x0) / (x1 - x0)) * (width - left - right);
  const py = (y) => top + (1 - (y - y0) / (y1 - y0)) * (height - top - bottom);
  const label = `Mean tumour intensity per phase: ${points.map((p) => `${useTimes ? `${Math.round(p.x)} s` : `phase ${p.phase}`} ${Math.round(p.y)}`).join(", ")}`;
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": label, class: "kinetic-chart" });
  const base = top + (height - top - bottom);
  chart.append(
    svg("line", { class: "axis", x1: left, x2: width - right, y1: base, y2: base }),
    svg("line", { class: "axis", x1: left, x2: left, y1: top, y2: base }),
    svg("text", { x: left - 6, y: py(y1), "text-anchor": "end", "dominant-baseline": "hanging", "font-size": 10, text: String(Math.round(y1)) }),
    svg("text", { x: left - 6, y: base, "text-anchor": "end", "font-size": 10, text: String(Math.round(y0)) }),
    svg("text", { x: (left + width - right) / 2, y: height - 4, "text-anchor": "middle", "font-size": 10.5, text: useTimes ? "seconds after phase 0" : "phase" }),
  );
  for (const [column, name] of [["kinetic_early_phase", "early"], ["kinetic_late_phase", "late"]]) {
    const phase = fields[column];
    const p = points.find((q) => q.phase === phase);
    if (!p) continue;
    chart.append(
      svg("line", { class: `phase-mark ${name}`, x1: px(p.x), x2: px(p.x), y1: top, y2: base }),
      svg("text", { x: px(p.x), y: base + 12, "text-anchor": "middle", "font-size": 9.5, text: name }),
    );
  }
  chart.append(svg("polyline", { class: "curve", fill: "none", points: points.map((p) => `${px(p.x).toFixed(1)},${py(p.y).toFixed(1)}`).join(" ") }));
  for (const p of points) {
    chart.append(
      svg("circle", { class: "curve-point", cx: px(p.x), cy: py(p.y), r: 3 },
        svg("title", { text: `phase ${p.phase}${useTimes ? ` (${Math.round(p.x)} s)` : ""}: ${p.y.toFixed(1)}` })),
    );
  }
  body.append(chart);
  for (const [column, name, digits] of VALUES) {
    if (!(column in fields)) continue;
    const value = fields[column];
    values.append(
      el("dt", { text: name, title: column }),
      el("dd", { class: value === null || value === undefined ? "null" : "", dataset: { column }, text: fixed(value, digits) }),
    );
  }
  if (fields.kinetic_phase_fallback) {
    values.append(el("dt", { text: "Phases" }), el("dd", { text: "1 and last (no acquisition times)" }));
  }
}
