// Small DOM helpers. Text is always set as text (never innerHTML), so data cannot inject markup.

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const SVG_NS = "http://www.w3.org/2000/svg";

export function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null) continue;
    if (key === "text") node.textContent = value;
    else node.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function clear(node) {
  while (node.firstChild) node.firstChild.remove();
  return node;
}

// A problem (ApiProblem or any Error) as a readable block: status, title, detail.
export function problemNode(error, { onClose, hint } = {}) {
  const status = error && error.status ? String(error.status) : "";
  const title = (error && error.title) || (error && error.name) || "Error";
  const detail = error && error.title ? error.detail : error && error.message ? error.message : String(error);
  const box = el(
    "div",
    { class: "problem" },
    el("div", {},
      status ? el("span", { class: "status", text: status + " " }) : null,
      el("strong", { text: title }),
      detail ? el("div", { class: "detail", text: detail }) : null,
      error && error.rule ? el("div", { class: "muted", text: `rule: ${error.rule}` }) : null,
      hint ? el("div", { class: "hint-line", text: hint }) : null,
    ),
  );
  if (onClose) box.append(el("button", { type: "button", class: "close", "aria-label": "Dismiss", text: "×", onclick: onClose }));
  return box;
}

export function showInline(container, error) {
  clear(container);
  if (!error) return;
  const node = problemNode(error);
  // The inline box itself carries the styling; copy the pieces in.
  container.append(...node.firstChild.childNodes);
}

export function formatValue(value) {
  if (value === null || value === undefined) return "—";
  if (typeof value === "boolean") return value ? "yes" : "no";
  if (typeof value === "number") {
    if (Number.isInteger(value)) return String(value);
    return String(Math.round(value * 1000) / 1000);
  }
  if (Array.isArray(value)) return "[" + value.map(formatValue).join(", ") + "]";
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

export function debounce(fn, ms) {
  let timer = 0;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}
