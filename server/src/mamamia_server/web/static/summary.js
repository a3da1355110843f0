// Cohort summary: bar charts (plain SVG), an age histogram and a Table-1 style summary.
// WHERE cohorts use /v1/facets for the counts; SQL cohorts are summarised by SELECTs over the
// SQL as a subquery (only over the columns the SQL returns). Age statistics come from a query.

import { getJSON, postJSON } from "./api.js";
import { clear, el, showInline, svg } from "./ui.js";

const $ = (id) => document.getElementById(id);

// Charts: [element id, column].
const CHARTS = [
  ["chart-dataset", "dataset"],
  ["chart-subtype", "tumor_subtype_group"],
  ["chart-pcr", "pcr"],
  ["chart-field", "field_strength"],
];

// Table 1 rows, in order; columns the catalog lacks are left out.
const TABLE1 = [
  ["dataset", "Dataset"],
  ["tumor_subtype_group", "Tumour subtype group"],
  ["tumor_subtype", "Tumour subtype"],
  ["pcr", "pCR"],
  ["age_group", "Age group"],
  ["menopause", "Menopause"],
  ["ethnicity_group", "Ethnicity group"],
  ["bmi_group", "BMI group"],
  ["field_strength", "Field strength (T)"],
  ["manufacturer", "Manufacturer"],
  ["bilateral_mri", "Bilateral MRI"],
];

// Tumour kinetics and shape in Table 1, as median [IQR] (docs/features.md): [column, title, digits].
const FEATURE_ROWS = [
  ["ftv_cm3", "FTV (cm³)", 2],
  ["pe_peak", "Peak PE (%)", 0],
  ["ser_mean", "Mean SER", 2],
  ["washout_fraction", "Washout fraction", 2],
  ["shape_volume_cm3", "Tumour volume (cm³)", 2],
  ["shape_feret_mm", "Maximum diameter (mm)", 1],
  ["shape_sphericity", "Sphericity", 2],
];

function label(column, value) {
  if (value === null || value === undefined) return "missing";
  if (typeof value === "boolean") return value ? "yes" : "no";
  if (column === "field_strength" && typeof value === "number") return `${value.toFixed(1)} T`;
  return String(value);
}

// Order: the schema's value set where it has one (age groups read young to old), numbers
// ascending, yes before no, else by count; "missing" always last.
function sortItems(column, pairs, order = null) {
  const items = pairs.map(({ value, count }) => ({ value, count, label: label(column, value), missing: value === null }));
  const numeric = items.every((i) => i.missing || typeof i.value === "number");
  const boolean = items.every((i) => i.missing || typeof i.value === "boolean");
  items.sort((a, b) => {
    if (a.missing !== b.missing) return a.missing ? 1 : -1;
    if (boolean) return Number(b.value) - Number(a.value);
    if (numeric) return a.value - b.value;
    if (order) {
      const ia = order.indexOf(String(a.value));
      const ib = order.indexOf(String(b.value));
      if (ia >= 0 && ib >= 0 && column === "age_group") return ia - ib;
    }
    return b.count - a.count || String(a.label).localeCompare(String(b.label));
  });
  return items;
}

function percent(count, total) {
  return total ? `${((100 * count) / total).toFixed(1)}%` : "–";
}

function barChart(body, items, total, title) {
  clear(body);
  if (!items.length || !total) {
    body.append(el("p", { class: "empty", text: "No cases." }));
    return;
  }
  // Drawn at the box's own pixel width, so text keeps its size.
  const rowH = 26;
  const labelW = 130;
  const width = Math.max(300, Math.round(body.clientWidth || 400));
  const barMax = width - labelW - 92;
  const height = items.length * rowH + 6;
  const max = Math.max(...items.map((i) => i.count));
  const summaryText = items.map((i) => `${i.label}: ${i.count}`).join(", ");
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": `${title}: ${summaryText}` });
  items.forEach((item, row) => {
    const y = row * rowH + 4;
    const w = max ? Math.max(1, (item.count / max) * barMax) : 0;
    const text = item.label.length > 20 ? item.label.slice(0, 19) + "…" : item.label;
    chart.append(
      svg("text", { x: labelW - 8, y: y + rowH / 2 + 1, "text-anchor": "end", "dominant-baseline": "middle", "font-size": 12, text }),
      svg("rect", { class: item.missing ? "bar missing" : "bar", x: labelW, y: y + 3, width: w, height: rowH - 8, rx: 2 },
        svg("title", { text: `${item.label}: ${item.count} (${percent(item.count, total)})` })),
      svg("text", { x: labelW + w + 6, y: y + rowH / 2 + 1, "dominant-baseline": "middle", "font-size": 11.5, text: `${item.count} (${percent(item.count, total)})` }),
    );
  });
  chart.append(svg("line", { class: "axis", x1: labelW, x2: labelW, y1: 2, y2: height - 2 }));
  body.append(chart);
  body.dataset.rendered = String(items.length);
}

function histogram(body, bins, title) {
  clear(body);
  if (!bins.length) {
    body.append(el("p", { class: "empty", text: "No ages in this cohort." }));
    return;
  }
  const width = Math.max(400, Math.round(body.clientWidth || 820));
  const height = 220;
  const left = 40;
  const bottom = 28;
  const top = 18;
  const plotW = width - left - 10;
  const plotH = height - bottom - top;
  const lo = bins[0].bin;
  const hi = bins[bins.length - 1].bin;
  const slots = (hi - lo) / 5 + 1;
  const counts = new Map(bins.map((b) => [b.bin, b.n]));
  const max = Math.max(...bins.map((b) => b.n));
  const slotW = plotW / slots;
  const summaryText = bins.map((b) => `${b.bin}–${b.bin + 4}: ${b.n}`).join(", ");
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": `${title}: ${summaryText}` });
  // y ticks
  const step = niceStep(max);
  for (let v = 0; v <= max; v += step) {
    const y = top + plotH - (v / max) * plotH;
    chart.append(
      svg("line", { x1: left, x2: width - 10, y1: y, y2: y, stroke: "#e3e6ea" }),
      svg("text", { x: left - 6, y, "text-anchor": "end", "dominant-baseline": "middle", "font-size": 11, text: String(v) }),
    );
  }
  for (let s = 0; s < slots; s += 1) {
    const bin = lo + s * 5;
    const n = counts.get(bin) || 0;
    const h = max ? (n / max) * plotH : 0;
    const x = left + s * slotW;
    chart.append(
      svg("rect", { class: "bar", x: x + 2, y: top + plotH - h, width: Math.max(1, slotW - 4), height: h },
        svg("title", { text: `${bin}–${bin + 4} years: ${n}` })),
      svg("text", { x: x + slotW / 2, y: height - bottom + 15, "text-anchor": "middle", "font-size": 11, text: String(bin) }),
    );
    if (n) chart.append(svg("text", { x: x + slotW / 2, y: top + plotH - h - 4, "text-anchor": "middle", "font-size": 10.5, text: String(n) }));
  }
  chart.append(svg("line", { class: "axis", x1: left, x2: width - 10, y1: top + plotH, y2: top + plotH }));
  body.append(chart);
  body.dataset.rendered = String(bins.length);
}

function niceStep(max) {
  if (max <= 5) return 1;
  const raw = max / 5;
  const pow = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 5, 10]) if (m * pow >= raw) return m * pow;
  return 10 * pow;
}

function num(value, digits = 1) {
  return value === null || value === undefined || Number.isNaN(value) ? "–" : Number(value).toFixed(digits);
}

export class Summary {
  constructor({ onProblem }) {
    this.onProblem = onProblem;
    this.key = null;
    this.columns = null; // names of the cases columns
    this.valueSets = {}; // column -> its closed value set, from the schema
    this.generation = 0;
  }

  async caseColumns() {
    if (!this.columns) {
      const schema = await getJSON("v1/tables/cases/schema");
      this.columns = schema.columns.map((c) => c.name);
      for (const c of schema.columns) if (c.values) this.valueSets[c.name] = c.values;
    }
    return this.columns;
  }

  // Counts per value of `names` over the cohort: {total, facets: {name: [{value, count}]}}.
  async counts(cohort, names) {
    if (cohort.sql === undefined) {
      return getJSON("v1/facets", { query: { where: cohort.where || "", columns: names.join(",") } });
    }
    const from = `(${cohort.sql.replace(/;\s*$/, "")}) AS cohort`;
    const total = (await postJSON("v1/query", { sql: `SELECT count(*) AS n FROM ${from}`, limit: 1 })).rows[0][0];
    const facets = {};
    for (const name of names) {
      const result = await postJSON("v1/query", { sql: `SELECT "${name}" AS value, count(*) AS n FROM ${from} GROUP BY 1`, limit: 1000 });
      facets[name] = result.rows.map(([value, count]) => ({ value, count }));
    }
    return { total, facets };
  }

  async ages(cohort) {
    const from = cohort.sql === undefined ? `cases WHERE (\n${cohort.where || "TRUE"}\n)` : `(${cohort.sql.replace(/;\s*$/, "")}) AS cohort`;
    const stats = await postJSON("v1/query", {
      sql: `SELECT count(*) AS n, count(age) AS n_age, avg(age) AS mean, stddev_samp(age) AS sd, median(age) AS median, quantile_cont(age, 0.25) AS q1, quantile_cont(age, 0.75) AS q3, min(age) AS lo, max(age) AS hi FROM ${from}`,
      limit: 1,
    });
    const row = Object.fromEntries(stats.columns.map((c, i) => [c.name, stats.rows[0][i]]));
    const binned = await postJSON("v1/query", {
      sql: `SELECT CAST(floor(age / 5) * 5 AS INTEGER) AS bin, count(*) AS n FROM ${from} ${cohort.sql === undefined ? "AND" : "WHERE"} age IS NOT NULL GROUP BY 1 ORDER BY 1`,
      limit: 1000,
    });
    return { stats: row, bins: binned.rows.map(([bin, n]) => ({ bin, n })) };
  }

  // median, quartiles and count of each feature column the cohort has; null when it has none.
  async features(cohort, available) {
    const columns = FEATURE_ROWS.filter(([c]) => available.includes(c));
    if (!columns.length) return null;
    const from = cohort.sql === undefined ? `cases WHERE (\n${cohort.where || "TRUE"}\n)` : `(${cohort.sql.replace(/;\s*$/, "")}) AS cohort`;
    const parts = columns.flatMap(([c], i) => [
      `count("${c}") AS n${i}`,
      `median("${c}") AS m${i}`,
      `quantile_cont("${c}", 0.25) AS a${i}`,
      `quantile_cont("${c}", 0.75) AS b${i}`,
    ]);
    const result = await postJSON("v1/query", { sql: `SELECT count(*) AS n, ${parts.join(", ")} FROM ${from}`, limit: 1 });
    const row = Object.fromEntries(result.columns.map((c, i) => [c.name, result.rows[0][i]]));
    return columns.map(([column, title, digits], i) => ({
      column, title, digits, total: row.n, n: row[`n${i}`], median: row[`m${i}`], q1: row[`a${i}`], q3: row[`b${i}`],
    }));
  }

  async refresh(cohort, { force = false } = {}) {
    const key = JSON.stringify([cohort.where, cohort.sql]);
    if (!force && key === this.key) return;
    this.key = key;
    const generation = ++this.generation;
    const charts = $("charts");
    charts.setAttribute("aria-busy", "true");
    $("summary-scope").textContent = `Summarising ${cohort.label}…`;
    showInline($("summary-problem"), null);
    try {
      const all = await this.caseColumns();
      let available = all;
      if (cohort.sql !== undefined) {
        // The SQL's own result columns: summarise only what it returns.
        const probe = await postJSON("v1/query", { sql: `SELECT * FROM (${cohort.sql.replace(/;\s*$/, "")}) AS cohort LIMIT 0`, limit: 1 });
        available = probe.columns.map((c) => c.name);
        const why = await this.notPerCase(cohort, available);
        if (why) {
          if (generation !== this.generation) return;
          this.clearAll();
          $("summary-scope").textContent = `Not summarised: ${why}. The Summary describes cases; run a WHERE, or a SELECT that returns one row per case with its patient_id.`;
          return;
        }
      }
      const wanted = [...new Set([...CHARTS.map(([, c]) => c), ...TABLE1.map(([c]) => c)])].filter((c) => available.includes(c));
      const [counts, ages, features] = await Promise.all([
        this.counts(cohort, wanted),
        available.includes("age") ? this.ages(cohort) : Promise.resolve(null),
        this.features(cohort, available),
      ]);
      if (generation !== this.generation) return;
      this.render(cohort, counts, ages, features);
    } catch (error) {
      if (generation !== this.generation) return;
      this.key = null;
      $("summary-scope").textContent = "";
      showInline($("summary-problem"), error);
    } finally {
      if (generation === this.generation) charts.removeAttribute("aria-busy");
    }
  }

  // Why an SQL result is not one row per case (so a summary of it would mislead), or null.
  async notPerCase(cohort, columns) {
    if (!columns.includes("patient_id")) return "this result has no patient_id column";
    const from = `(${cohort.sql.replace(/;\s*$/, "")}) AS cohort`;
    const sql = `SELECT count(*) AS n, count(DISTINCT patient_id) AS ids, count(patient_id) AS named FROM ${from}`;
    const [n, ids, named] = (await postJSON("v1/query", { sql, limit: 1 })).rows[0];
    if (named !== n) return `${n - named} of its ${n} rows have no patient_id`;
    if (ids !== n) return `it has ${n} rows for ${ids} cases`;
    return null;
  }

  clearAll() {
    for (const [id] of CHARTS) clear($(id).querySelector(".chart-body"));
    clear($("chart-age").querySelector(".chart-body"));
    clear($("table1").tHead);
    clear($("table1").tBodies[0]);
  }

  render(cohort, counts, ages, features) {
    const total = counts.total;
    $("summary-scope").textContent = `${total} ${total === 1 ? "case" : "cases"}: ${cohort.label}`;
    for (const [id, column] of CHARTS) {
      const figure = $(id);
      const body = figure.querySelector(".chart-body");
      const pairs = counts.facets[column];
      if (!pairs) {
        clear(body).append(el("p", { class: "empty", text: `No ${column} column in this cohort.` }));
        continue;
      }
      barChart(body, sortItems(column, pairs, this.valueSets[column]), total, figure.querySelector("figcaption").textContent);
    }
    const ageBody = $("chart-age").querySelector(".chart-body");
    if (ages) histogram(ageBody, ages.bins, "Age at diagnosis");
    else clear(ageBody).append(el("p", { class: "empty", text: "No age column in this cohort." }));
    this.renderTable1(counts, ages, features);
  }

  renderTable1(counts, ages, features) {
    const table = $("table1");
    const total = counts.total;
    clear(table.tHead).append(
      el("tr", {}, el("th", { scope: "col", text: "Characteristic" }), el("th", { scope: "col", text: `Cohort (n = ${total})` })),
    );
    const body = clear(table.tBodies[0]);
    body.append(el("tr", {}, el("td", { text: "Cases, n" }), el("td", { text: String(total) })));
    if (ages) {
      const s = ages.stats;
      body.append(
        el("tr", { class: "group" }, el("td", { text: "Age (years)" }), el("td", { text: "" })),
        el("tr", { class: "level" }, el("td", { text: "mean (SD)" }), el("td", { text: `${num(s.mean)} (${num(s.sd)})` })),
        el("tr", { class: "level" }, el("td", { text: "median [IQR]" }), el("td", { text: `${num(s.median)} [${num(s.q1)}–${num(s.q3)}]` })),
        el("tr", { class: "level" }, el("td", { text: "range" }), el("td", { text: `${num(s.lo, 0)}–${num(s.hi, 0)}` })),
      );
      if (s.n - s.n_age > 0) {
        body.append(el("tr", { class: "level" }, el("td", { text: "missing" }), el("td", { text: `${s.n - s.n_age} (${percent(s.n - s.n_age, s.n)})` })));
      }
    }
    for (const f of features || []) {
      body.append(
        el("tr", { class: "group", dataset: { column: f.column } },
          el("td", { text: `${f.title}, median [IQR]` }),
          el("td", { text: `${num(f.median, f.digits)} [${num(f.q1, f.digits)}–${num(f.q3, f.digits)}]` })),
      );
      if (f.total - f.n > 0) {
        body.append(el("tr", { class: "level" }, el("td", { text: "missing" }), el("td", { text: `${f.total - f.n} (${percent(f.total - f.n, f.total)})` })));
      }
    }
    for (const [column, title] of TABLE1) {
      const pairs = counts.facets[column];
      if (!pairs) continue;
      body.append(el("tr", { class: "group" }, el("td", { text: title }), el("td", { text: "n (%)" })));
      for (const item of sortItems(column, pairs, this.valueSets[column])) {
        body.append(el("tr", { class: "level" }, el("td", { text: item.label }), el("td", { text: `${item.count} (${percent(item.count, total)})` })));
      }
    }
  }
}
