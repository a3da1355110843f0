// mamamia page: tabs, token, query box with the schema at hand, paged results, downloads.
// The summary (charts, Table 1) lives in summary.js and the case viewer in viewer.js.

import { ApiProblem, getJSON, getToken, postJSON, request, saveBlob, setToken, shortHash, sqlLiteral } from "./api.js";
import { clear, el, formatValue, problemNode, showInline } from "./ui.js";
import { Summary } from "./summary.js";
import { Viewer } from "./viewer.js";

const $ = (id) => document.getElementById(id);

const cohort = {
  mode: "where",
  spec: null, // {sql} or {where}: the query the results show
  version: null, // catalog version of the results
  columns: [],
  rows: [],
  total: 0,
  offset: 0,
  cursors: [null], // cursors[i] fetches page i (null: the first page, from spec)
  page: 0,
  nextCursor: null,
};

let schemaColumns = [];
let summary;
let viewer;

// ---------- problems ----------
function showProblem(error) {
  if (error && error.name === "AbortError") return;
  const box = $("problems");
  const unauthorized = error instanceof ApiProblem && error.status === 401;
  const hint = unauthorized ? "Enter an access token at the top right and press Use." : null;
  const node = problemNode(error, { onClose: () => node.remove(), hint });
  box.append(node);
  while (box.children.length > 3) box.firstChild.remove();
  if (unauthorized) $("token-input").focus();
}

function clearProblems() {
  clear($("problems"));
}

// ---------- tabs ----------
const TABS = ["cohort", "summary", "case"];

function selectTab(name, { focus = false } = {}) {
  for (const tab of TABS) {
    const button = $(`tab-${tab}`);
    const on = tab === name;
    button.setAttribute("aria-selected", on ? "true" : "false");
    button.tabIndex = on ? 0 : -1;
    $(`panel-${tab}`).hidden = !on;
    if (on && focus) button.focus();
  }
  if (name === "summary") summary.refresh(cohortForSummary());
  if (name === "case") viewer.layout();
}

function initTabs() {
  const list = document.querySelector(".tabs");
  list.addEventListener("click", (event) => {
    const button = event.target.closest("[data-tab]");
    if (!button) return;
    selectTab(button.dataset.tab);
    if (button.dataset.tab !== "case") history.replaceState(null, "", "#" + button.dataset.tab);
  });
  list.addEventListener("keydown", (event) => {
    const current = TABS.indexOf(document.activeElement.dataset.tab);
    if (current < 0) return;
    let next = null;
    if (event.key === "ArrowRight") next = (current + 1) % TABS.length;
    if (event.key === "ArrowLeft") next = (current + TABS.length - 1) % TABS.length;
    if (event.key === "Home") next = 0;
    if (event.key === "End") next = TABS.length - 1;
    if (next !== null) {
      event.preventDefault();
      selectTab(TABS[next], { focus: true });
    }
  });
}

// ---------- token ----------
function showTokenState() {
  $("token-state").textContent = getToken() ? "token set" : "";
}

function initToken() {
  $("token-input").value = getToken();
  showTokenState();
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    setToken($("token-input").value.trim());
    showTokenState();
    clearProblems();
    reloadAll();
  });
  $("token-clear").addEventListener("click", () => {
    $("token-input").value = "";
    setToken("");
    showTokenState();
  });
}

// ---------- catalog info and schema ----------
async function loadHealth() {
  try {
    const health = await getJSON("v1/health");
    $("catalog-info").textContent = `catalog ${health.catalog_version}`;
    if (health.reload_error) $("catalog-info").textContent += ` (newest catalog not loaded: ${health.reload_error})`;
  } catch (error) {
    $("catalog-info").textContent = "server unreachable";
    showProblem(error);
  }
}

async function loadTables() {
  const select = $("schema-table");
  const before = select.value || "cases";
  const list = await getJSON("v1/tables");
  clear(select);
  for (const table of list.tables) {
    select.append(el("option", { value: table.name, text: `${table.name} (${table.rows ?? "?"} rows)` }));
  }
  select.value = list.tables.some((t) => t.name === before) ? before : list.tables[0]?.name || "";
  await loadSchema(select.value);
}

async function loadSchema(table) {
  if (!table) return;
  const schema = await getJSON(`v1/tables/${encodeURIComponent(table)}/schema`);
  schemaColumns = schema.columns;
  renderSchema();
}

function insertText(text) {
  const area = $("query-text");
  const start = area.selectionStart ?? area.value.length;
  const end = area.selectionEnd ?? area.value.length;
  const before = area.value.slice(0, start);
  const pad = before && !/[\s(]$/.test(before) ? " " : "";
  area.setRangeText(pad + text, start, end, "end");
  area.focus();
}

function renderSchema() {
  const list = clear($("schema-list"));
  const filter = $("schema-filter").value.trim().toLowerCase();
  for (const column of schemaColumns) {
    const hay = `${column.name} ${column.description || ""}`.toLowerCase();
    if (filter && !hay.includes(filter)) continue;
    const type = column.logical_type || column.type;
    const item = el(
      "li",
      {},
      el("div", { class: "col-line" },
        el("button", { type: "button", class: "col-name", title: `Insert ${column.name}`, text: column.name, onclick: () => insertText(column.name) }),
        el("span", { class: "col-type", text: type }),
        column.unit ? el("span", { class: "col-unit", text: column.unit }) : null,
      ),
      column.description ? el("div", { class: "col-desc", text: column.description }) : null,
    );
    if (column.values && column.values.length) {
      const values = el("div", { class: "col-values", role: "group", "aria-label": `Values of ${column.name}` });
      for (const value of column.values.slice(0, 40)) {
        const literal = type === "boolean" ? (value === "1" ? "true" : value === "0" ? "false" : value) : sqlLiteral(value);
        values.append(el("button", { type: "button", title: `Insert ${column.name} = ${literal}`, text: value, onclick: () => insertText(`${column.name} = ${literal}`) }));
      }
      item.append(values);
    }
    list.append(item);
  }
}

// ---------- query ----------
function currentSpec() {
  const text = $("query-text").value.trim();
  if (cohort.mode === "sql") return { sql: text };
  return { where: text || "TRUE" };
}

function setMode(mode) {
  cohort.mode = mode;
  const label = $("query-label");
  clear(label);
  const area = $("query-text");
  if (mode === "sql") {
    label.append("SELECT over the catalog's tables (DuckDB dialect)");
    area.placeholder = "SELECT dataset, count(*) AS n FROM cases GROUP BY dataset ORDER BY n DESC";
  } else {
    label.append("WHERE expression over ", el("code", { text: "cases" }), " (empty: every case)");
    area.placeholder = "dataset = 'DUKE' AND age < 50";
  }
}

async function runQuery() {
  const spec = currentSpec();
  if (spec.sql !== undefined && !spec.sql) {
    showInline($("query-problem"), new ApiProblem({ title: "Empty query", detail: "write a SELECT, or switch to WHERE" }));
    return;
  }
  cohort.spec = spec;
  cohort.cursors = [null];
  cohort.page = 0;
  await loadPage();
  if (!$("panel-summary").hidden) summary.refresh(cohortForSummary());
}

async function loadPage() {
  const button = $("run-query");
  button.disabled = true;
  $("row-count").textContent = "Running…";
  showInline($("query-problem"), null);
  try {
    const cursor = cohort.cursors[cohort.page];
    const limit = Number($("page-size").value);
    const body = cursor ? { cursor } : { ...cohort.spec, limit };
    const result = await postJSON("v1/query", body);
    showWarnings(result.warnings || []);
    cohort.version = result.catalog_version;
    cohort.columns = result.columns;
    cohort.rows = result.rows;
    cohort.total = result.total;
    cohort.offset = result.offset ?? cohort.page * limit;
    cohort.nextCursor = result.next_cursor;
    if (result.next_cursor) cohort.cursors[cohort.page + 1] = result.next_cursor;
    renderResults();
  } catch (error) {
    showWarnings([]);
    // No rows, pager or clickable cases of the previous query stay under this one's error.
    Object.assign(cohort, { columns: [], rows: [], total: 0, offset: 0, nextCursor: null });
    renderResults();
    $("download-csv").disabled = true;
    $("download-parquet").disabled = true;
    $("row-count").textContent = "The query failed.";
    showInline($("query-problem"), error);
    if (error instanceof ApiProblem && error.status === 401) showProblem(error);
  } finally {
    button.disabled = false;
  }
}

// The server's value-set warnings ("dataset = 'Duke' matches no row: ... did you mean 'DUKE'?").
function showWarnings(texts) {
  const list = clear($("query-warnings"));
  for (const text of texts) list.append(el("li", { text }));
  list.hidden = !texts.length;
}

// Key columns first (age and pCR on screen, not 40 columns to the right), the rest as returned.
const KEY_COLUMNS = ["patient_id", "dataset", "age", "pcr", "tumor_subtype_group", "split"];
function displayOrder(columns) {
  const names = columns.map((c) => c.name);
  const keys = KEY_COLUMNS.map((k) => names.indexOf(k)).filter((i) => i >= 0);
  return [...keys, ...names.map((_, i) => i).filter((i) => !keys.includes(i))];
}

// WHERE results: the columns the user chose to see (by name; kept from query to query).
const hiddenColumns = new Set();

function whereResults() {
  return Boolean(cohort.spec && cohort.spec.where !== undefined && cohort.columns.length);
}

function shownOrder() {
  const order = displayOrder(cohort.columns);
  if (!whereResults()) return order;
  return order.filter((i) => !hiddenColumns.has(cohort.columns[i].name));
}

function renderColumnPicker() {
  const picker = $("column-picker");
  picker.hidden = !whereResults();
  if (picker.hidden) return;
  const names = displayOrder(cohort.columns).map((i) => cohort.columns[i].name);
  const choices = $("column-choices");
  if (choices.dataset.names !== names.join(",")) {
    choices.dataset.names = names.join(",");
    choices.querySelectorAll("label").forEach((node) => node.remove());
    for (const name of names) {
      const box = el("input", { type: "checkbox", value: name });
      choices.append(el("label", {}, box, name));
    }
  }
  for (const box of choices.querySelectorAll("input")) box.checked = !hiddenColumns.has(box.value);
  $("column-picker-count").textContent = `(${names.filter((n) => !hiddenColumns.has(n)).length} of ${names.length})`;
}

function initColumnPicker() {
  $("column-choices").addEventListener("change", (event) => {
    const box = event.target;
    if (box.checked) hiddenColumns.delete(box.value);
    else hiddenColumns.add(box.value);
    renderResults();
  });
  $("columns-all").addEventListener("click", () => {
    hiddenColumns.clear();
    renderResults();
  });
  $("columns-keys").addEventListener("click", () => {
    for (const c of cohort.columns) if (!KEY_COLUMNS.includes(c.name)) hiddenColumns.add(c.name);
    for (const name of KEY_COLUMNS) hiddenColumns.delete(name);
    renderResults();
  });
}

function idColumn() {
  return cohort.columns.findIndex((c) => c.name === "patient_id");
}

function renderResults() {
  const table = $("results");
  const thead = clear(table.tHead);
  const tbody = clear(table.tBodies[0]);
  const head = el("tr");
  const order = shownOrder();
  renderColumnPicker();
  for (const i of order) {
    const column = cohort.columns[i];
    head.append(el("th", { scope: "col" }, column.name, el("span", { class: "th-type", text: column.type })));
  }
  thead.append(head);
  const id = idColumn();
  for (const row of cohort.rows) {
    const tr = el("tr");
    for (const i of order) {
      const value = row[i];
      const numeric = typeof value === "number";
      tr.append(el("td", { class: value === null ? "null" : numeric ? "num" : "", text: formatValue(value) }));
    }
    if (id >= 0 && row[id]) {
      tr.tabIndex = 0;
      tr.dataset.case = String(row[id]);
      tr.title = `Open ${row[id]} in the viewer`;
    }
    tbody.append(tr);
  }
  const first = cohort.rows.length ? cohort.offset + 1 : 0;
  const last = cohort.offset + cohort.rows.length;
  const noun = cohort.total === 1 ? "row" : "rows";
  $("row-count").textContent = `${cohort.total} ${noun}`;
  $("row-count").dataset.total = String(cohort.total);
  $("open-hint").hidden = id < 0 || !cohort.rows.length;
  $("page-info").textContent = cohort.total ? `${first}–${last} of ${cohort.total}` : "";
  $("page-prev").disabled = cohort.page === 0;
  $("page-next").disabled = !cohort.nextCursor;
  $("download-csv").disabled = false;
  $("download-parquet").disabled = false;
  // The viewer's previous/next buttons walk this page's cases.
  const ids = id >= 0 ? cohort.rows.map((r) => r[id]).filter(Boolean).map(String) : [];
  viewer.setCaseList(ids);
  const datalist = clear($("case-ids"));
  for (const caseId of ids) datalist.append(el("option", { value: caseId }));
}

function initResults() {
  const tbody = $("results").tBodies[0];
  const open = (tr) => {
    if (!tr || !tr.dataset.case) return;
    openCase(tr.dataset.case);
  };
  tbody.addEventListener("click", (event) => open(event.target.closest("tr")));
  tbody.addEventListener("keydown", (event) => {
    const tr = event.target.closest("tr");
    if (!tr) return;
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      open(tr);
    } else if (event.key === "ArrowDown" && tr.nextElementSibling) {
      event.preventDefault();
      tr.nextElementSibling.focus();
    } else if (event.key === "ArrowUp" && tr.previousElementSibling) {
      event.preventDefault();
      tr.previousElementSibling.focus();
    }
  });
  $("page-next").addEventListener("click", () => {
    if (!cohort.nextCursor) return;
    cohort.page += 1;
    loadPage();
  });
  $("page-prev").addEventListener("click", () => {
    if (cohort.page === 0) return;
    cohort.page -= 1;
    loadPage();
  });
}

// ---------- downloads ----------
const CSV_PAGE = 10000;

async function download(format) {
  if (!cohort.spec) return;
  const button = $(format === "csv" ? "download-csv" : "download-parquet");
  const label = button.textContent;
  button.disabled = true;
  button.textContent = "Preparing…";
  showInline($("query-problem"), null);
  try {
    const query = { format, version: cohort.version };
    let blob;
    if (format === "csv") {
      // Page through the whole result; CSV pages join by dropping each later page's header.
      const parts = [];
      let body = { ...cohort.spec, limit: CSV_PAGE };
      for (let page = 0; ; page += 1) {
        const response = await request("v1/query", { method: "POST", json: body, query, accept: "text/csv" });
        let text = await response.text();
        if (page > 0) text = text.slice(text.indexOf("\n") + 1);
        parts.push(text);
        const next = response.headers.get("X-Next-Cursor");
        if (!next) break;
        body = { cursor: next };
      }
      blob = new Blob(parts, { type: "text/csv" });
    } else {
      // One Parquet file holds the whole result: ask for it as one page.
      const body = { ...cohort.spec, limit: Math.max(cohort.total, 1) };
      const response = await request("v1/query", { method: "POST", json: body, query, accept: "application/vnd.apache.parquet" });
      blob = await response.blob();
    }
    saveBlob(blob, `mamamia-cohort-${cohort.version || "catalog"}-${shortHash(cohort.spec)}.${format}`);
  } catch (error) {
    showInline($("query-problem"), error);
  } finally {
    button.disabled = false;
    button.textContent = label;
  }
}

// ---------- cases ----------
function openCase(caseId) {
  selectTab("case");
  history.replaceState(null, "", "#case=" + encodeURIComponent(caseId));
  viewer.open(caseId);
}

function cohortForSummary() {
  if (!cohort.spec) return { where: null, label: "every case" };
  if (cohort.spec.where !== undefined) {
    const where = cohort.spec.where === "TRUE" ? null : cohort.spec.where;
    return { where, label: where ? `cases where ${where}` : "every case", version: cohort.version };
  }
  return { sql: cohort.spec.sql, label: "the SQL result", version: cohort.version };
}

async function reloadAll() {
  await loadHealth();
  try {
    await loadTables();
  } catch (error) {
    showProblem(error);
    return;
  }
  if (!cohort.spec) await runQuery();
  else await loadPage();
  if (!$("panel-summary").hidden) summary.refresh(cohortForSummary(), { force: true });
  viewer.reload();
}

function route() {
  const hash = decodeURIComponent(location.hash.slice(1));
  if (hash.startsWith("case=")) openCase(hash.slice(5));
  else if (TABS.includes(hash)) selectTab(hash);
}

function init() {
  summary = new Summary({ onProblem: showProblem });
  viewer = new Viewer({ onProblem: showProblem });
  initTabs();
  initToken();
  initResults();
  initColumnPicker();
  for (const radio of document.querySelectorAll('input[name="mode"]')) {
    radio.addEventListener("change", () => setMode(radio.value));
  }
  $("query-form").addEventListener("submit", (event) => {
    event.preventDefault();
    runQuery();
  });
  $("query-text").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      runQuery();
    }
  });
  $("page-size").addEventListener("change", () => {
    if (cohort.spec) runQuery();
  });
  $("schema-filter").addEventListener("input", renderSchema);
  $("schema-table").addEventListener("change", () => loadSchema($("schema-table").value).catch(showProblem));
  $("download-csv").addEventListener("click", () => download("csv"));
  $("download-parquet").addEventListener("click", () => download("parquet"));
  window.addEventListener("hashchange", route);
  reloadAll().then(route);
}

init();
