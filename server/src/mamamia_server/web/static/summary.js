// Cohort summary: bar charts (plain SVG), an age histogram and a Table-1 style summary.
// WHERE cohorts use /v1/facets for the counts; SQL cohorts are summarised by SELECTs over the
// SQL as a subquery (only over the columns the SQL returns). Age statistics come from a query.
// Table 1 may be split by a categorical column (one column per value, and "missing"), and is
// exported as CSV or Markdown from the same cells the page shows.

import { getJSON, postJSON, saveBlob, shortHash } from "./api.js";
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

// The rows the cohort is drawn from, for a SELECT over it.
function fromClause(cohort) {
  return cohort.sql === undefined ? `cases WHERE (\n${cohort.where || "TRUE"}\n)` : `(${cohort.sql.replace(/;\s*$/, "")}) AS cohort`;
}

const quote = (name) => `"${name.replace(/"/g, '""')}"`;
const AGE_STATS = "count(*) AS n, count(age) AS n_age, avg(age) AS mean, stddev_samp(age) AS sd, median(age) AS median, quantile_cont(age, 0.25) AS q1, quantile_cont(age, 0.75) AS q3, min(age) AS lo, max(age) AS hi";
// A split column with more values than this makes an unreadable table: refused with a message.
const MAX_SPLIT_VALUES = 12;

function featureParts(columns) {
  return columns.flatMap(([c], i) => [
    `count("${c}") AS n${i}`,
    `median("${c}") AS m${i}`,
    `quantile_cont("${c}", 0.25) AS a${i}`,
    `quantile_cont("${c}", 0.75) AS b${i}`,
  ]);
}

function featureStats(columns, row) {
  return columns.map(([column, title, digits], i) => ({
    column, title, digits, total: row.n, n: row[`n${i}`], median: row[`m${i}`], q1: row[`a${i}`], q3: row[`b${i}`],
  }));
}

function rowObjects(result) {
  return result.rows.map((r) => Object.fromEntries(result.columns.map((c, i) => [c.name, r[i]])));
}

const keyOf = (value) => JSON.stringify(value ?? null);

// CSV field: quoted when it holds a comma, quote or line break.
function csvField(text) {
  return /[",\n\r]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

function mdField(text) {
  return text.replace(/\\/g, "\\\\").replace(/\|/g, "\\|");
}

export class Summary {
  constructor({ onProblem }) {
    this.onProblem = onProblem;
    this.key = null;
    this.columns = null; // names of the cases columns
    this.valueSets = {}; // column -> its closed value set, from the schema
    this.types = {}; // column -> its type, from the schema
    this.generation = 0;
    this.cohort = null; // the cohort shown
    this.table = null; // Table 1 as shown: {header, rows: [{kind, characteristic, level, cells}]}
    $("table1-split").addEventListener("change", () => {
      if (this.cohort) this.refresh(this.cohort, { force: true });
    });
    $("table1-csv").addEventListener("click", () => this.exportTable("csv"));
    $("table1-markdown").addEventListener("click", () => this.exportTable("md"));
  }

  // Categorical columns: a value set in the schema, a boolean, a Table 1 row, or the split.
  splitChoices(available) {
    const table1 = new Set(TABLE1.map(([c]) => c));
    return available.filter((c) => this.valueSets[c] || this.types[c] === "bool" || table1.has(c) || c === "split");
  }

  fillSplitChoices(available) {
    const select = $("table1-split");
    const current = select.value;
    const choices = this.splitChoices(available);
    clear(select).append(el("option", { value: "", text: "nothing (one column)" }), ...choices.map((c) => el("option", { value: c, text: c })));
    select.value = choices.includes(current) ? current : "";
  }

  async caseColumns() {
    if (!this.columns) {
      const schema = await getJSON("v1/tables/cases/schema");
      this.columns = schema.columns.map((c) => c.name);
      for (const c of schema.columns) {
        if (c.values) this.valueSets[c.name] = c.values;
        this.types[c.name] = c.type;
      }
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
    const from = fromClause(cohort);
    const stats = await postJSON("v1/query", { sql: `SELECT ${AGE_STATS} FROM ${from}`, limit: 1 });
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
    const result = await postJSON("v1/query", { sql: `SELECT count(*) AS n, ${featureParts(columns).join(", ")} FROM ${fromClause(cohort)}`, limit: 1 });
    return featureStats(columns, rowObjects(result)[0]);
  }

  // Table 1 per value of `split`: {groups: [{value, count, label, missing}], counts, ages, features},
  // each of counts/ages/features keyed by the group's keyOf(value).
  async splitData(cohort, split, names, available) {
    const from = fromClause(cohort);
    const s = quote(split);
    const query = async (sql) => rowObjects(await postJSON("v1/query", { sql, limit: 10000 }));
    const totals = await query(`SELECT ${s} AS s, count(*) AS n FROM ${from} GROUP BY 1`);
    if (totals.length > MAX_SPLIT_VALUES) {
      throw new Error(`${split} has ${totals.length} values in this cohort; split by a column with at most ${MAX_SPLIT_VALUES}`);
    }
    const groups = sortItems(split, totals.map((t) => ({ value: t.s, count: t.n })), this.valueSets[split]);
    const counts = {};
    await Promise.all(names.map(async (name) => {
      for (const r of await query(`SELECT ${s} AS s, ${quote(name)} AS value, count(*) AS n FROM ${from} GROUP BY 1, 2`)) {
        ((counts[keyOf(r.s)] ??= {})[name] ??= []).push({ value: r.value, count: r.n });
      }
    }));
    const ages = {};
    if (available.includes("age")) {
      for (const r of await query(`SELECT ${s} AS s, ${AGE_STATS} FROM ${from} GROUP BY 1`)) ages[keyOf(r.s)] = r;
    }
    const features = {};
    const columns = FEATURE_ROWS.filter(([c]) => available.includes(c));
    if (columns.length) {
      for (const r of await query(`SELECT ${s} AS s, count(*) AS n, ${featureParts(columns).join(", ")} FROM ${from} GROUP BY 1`)) {
        features[keyOf(r.s)] = featureStats(columns, r);
      }
    }
    return { split, groups, counts, ages, features };
  }

  async refresh(cohort, { force = false } = {}) {
    this.cohort = cohort;
    const key = JSON.stringify([cohort.where, cohort.sql, $("table1-split").value]);
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
      this.fillSplitChoices(available);
      const split = $("table1-split").value;
      const wanted = [...new Set([...CHARTS.map(([, c]) => c), ...TABLE1.map(([c]) => c)])].filter((c) => available.includes(c));
      const [counts, ages, features, parts] = await Promise.all([
        this.counts(cohort, wanted),
        available.includes("age") ? this.ages(cohort) : Promise.resolve(null),
        this.features(cohort, available),
        split ? this.splitData(cohort, split, TABLE1.map(([c]) => c).filter((c) => available.includes(c)), available) : Promise.resolve(null),
      ]);
      if (generation !== this.generation) return;
      this.render(cohort, counts, ages, features, parts);
    } catch (error) {
      if (generation !== this.generation) return;
      this.key = null;
      this.clearAll();
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
    this.table = null;
    $("table1-csv").disabled = true;
    $("table1-markdown").disabled = true;
  }

  render(cohort, counts, ages, features, parts) {
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
    this.table = this.table1(counts, ages, features, parts);
    this.renderTable1(this.table);
  }

  // Table 1 as cells: the overall column, then one per value of the split column (if any).
  table1(counts, ages, features, parts) {
    const total = counts.total;
    const groups = parts ? parts.groups : [];
    const header = ["Characteristic", "", `Cohort (n = ${total})`, ...groups.map((g) => `${parts.split}: ${g.label} (n = ${g.count})`)];
    const rows = [];
    const add = (kind, characteristic, level, overall, perGroup) => {
      rows.push({ kind, characteristic, level, cells: [overall, ...groups.map((g) => perGroup(keyOf(g.value), g))] });
    };
    add("group", "Cases, n", "", String(total), (_, g) => String(g.count));
    const ageOf = (key) => (parts.ages[key] || { n: 0, n_age: 0 });
    if (ages) {
      const title = "Age (years)";
      const meanSd = (s) => `${num(s.mean)} (${num(s.sd)})`;
      const median = (s) => `${num(s.median)} [${num(s.q1)}–${num(s.q3)}]`;
      const range = (s) => `${num(s.lo, 0)}–${num(s.hi, 0)}`;
      const missing = (s) => `${s.n - s.n_age} (${percent(s.n - s.n_age, s.n)})`;
      add("group", title, "", "", () => "");
      add("level", title, "mean (SD)", meanSd(ages.stats), (k) => meanSd(ageOf(k)));
      add("level", title, "median [IQR]", median(ages.stats), (k) => median(ageOf(k)));
      add("level", title, "range", range(ages.stats), (k) => range(ageOf(k)));
      if (ages.stats.n - ages.stats.n_age > 0) add("level", title, "missing", missing(ages.stats), (k) => missing(ageOf(k)));
    }
    (features || []).forEach((f, i) => {
      const title = `${f.title}, median [IQR]`;
      const of = (key) => (parts.features[key] || [])[i] || { total: 0, n: 0, median: null, q1: null, q3: null };
      const median = (x) => `${num(x.median, f.digits)} [${num(x.q1, f.digits)}–${num(x.q3, f.digits)}]`;
      const missing = (x) => `${x.total - x.n} (${percent(x.total - x.n, x.total)})`;
      add("group", title, "", median(f), (k) => median(of(k)));
      rows[rows.length - 1].column = f.column;
      if (f.total - f.n > 0) add("level", title, "missing", missing(f), (k) => missing(of(k)));
    });
    for (const [column, title] of TABLE1) {
      const pairs = counts.facets[column];
      if (!pairs) continue;
      add("group", title, "", "n (%)", () => "n (%)");
      for (const item of sortItems(column, pairs, this.valueSets[column])) {
        const cell = (key, g) => {
          const found = ((parts.counts[key] || {})[column] || []).find((p) => keyOf(p.value) === keyOf(item.value));
          const n = found ? found.count : 0;
          return `${n} (${percent(n, g.count)})`;
        };
        add("level", title, item.label, `${item.count} (${percent(item.count, total)})`, cell);
        rows[rows.length - 1].column = column;
      }
    }
    return { header, rows };
  }

  renderTable1(model) {
    const table = $("table1");
    clear(table.tHead).append(
      el("tr", {}, el("th", { scope: "col", text: model.header[0] }), ...model.header.slice(2).map((text) => el("th", { scope: "col", text }))),
    );
    const body = clear(table.tBodies[0]);
    for (const row of model.rows) {
      const attrs = { class: row.kind };
      if (row.column) attrs.dataset = { column: row.column };
      const name = row.kind === "group" ? row.characteristic : row.level;
      body.append(el("tr", attrs, el("td", { text: name }), ...row.cells.map((text) => el("td", { text }))));
    }
    $("table1-csv").disabled = false;
    $("table1-markdown").disabled = false;
  }

  // The cells the page shows, with the characteristic and the level in columns of their own.
  exportTable(format) {
    if (!this.table) return;
    const header = ["Characteristic", "Level", ...this.table.header.slice(2)];
    const lines = this.table.rows.map((r) => [r.characteristic, r.level, ...r.cells]);
    let text;
    if (format === "csv") {
      text = [header, ...lines].map((cells) => cells.map(csvField).join(",")).join("\n") + "\n";
    } else {
      const md = (cells) => `| ${cells.map(mdField).join(" | ")} |`;
      text = [md(header), md(header.map(() => "---")), ...lines.map(md)].join("\n") + "\n";
    }
    const c = this.cohort || {};
    const split = $("table1-split").value;
    const hash = shortHash([c.where ?? null, c.sql ?? null, split]);
    const type = format === "csv" ? "text/csv" : "text/markdown";
    saveBlob(new Blob([text], { type }), `mamamia-table1-${c.version || "catalog"}-${hash}.${format}`);
  }
}
