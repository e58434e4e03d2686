// The API reference, rendered from /api/openapi.json (FastAPI's own page would load its
// scripts from a CDN; this one works offline).
"use strict";

(() => {
  const h = (tag, props = {}, ...children) => {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(props)) if (v != null) (k === "text" ? (el.textContent = v) : k === "class" ? (el.className = v) : el.setAttribute(k, v));
    for (const c of children.flat()) if (c != null && c !== false) el.append(c);
    return el;
  };

  function typeOf(schema, spec) {
    if (!schema) return "";
    if (schema.$ref) return schema.$ref.split("/").pop();
    if (schema.anyOf) return schema.anyOf.map((s) => typeOf(s, spec)).join(" | ");
    if (schema.enum) return schema.enum.map((v) => JSON.stringify(v)).join(" | ");
    if (schema.type === "array") return `${typeOf(schema.items, spec)}[]`;
    const range = [schema.minimum != null ? `≥ ${schema.minimum}` : "", schema.maximum != null ? `≤ ${schema.maximum}` : ""].filter(Boolean).join(", ");
    return (schema.type || "object") + (range ? ` (${range})` : "");
  }

  function operation(path, method, op, spec) {
    const params = (op.parameters || []).map((p) => h("tr", {},
      h("td", {}, h("code", { text: p.name })), h("td", { text: p.in }), h("td", { text: typeOf(p.schema, spec) }),
      h("td", { text: p.required ? "required" : p.schema && p.schema.default !== undefined ? `default ${JSON.stringify(p.schema.default)}` : "" }),
      h("td", { text: p.description || (p.schema && p.schema.description) || "" })));
    const body = op.requestBody && op.requestBody.content && op.requestBody.content["application/json"];
    const answers = Object.entries(op.responses || {}).map(([code, r]) => {
      const schema = r.content && r.content["application/json"] && r.content["application/json"].schema;
      return h("span", { class: `tag ${code < 300 ? "ok" : code < 500 ? "warn" : "bad"}`, title: r.description || "", text: `${code}${schema ? ` ${typeOf(schema, spec)}` : ""}` });
    });
    return h("section", { class: "card op" },
      h("div", { class: "card-title" }, h("span", { class: `method ${method}`, text: method.toUpperCase() }), h("code", { text: path }), h("span", { class: "muted", text: op.summary || "" })),
      op.description ? h("p", { class: "muted", text: op.description }) : null,
      params.length ? h("table", { class: "eval params" }, h("tr", {}, ...["name", "in", "type", "", "meaning"].map((t) => h("th", { text: t }))), ...params) : null,
      body ? h("p", {}, "JSON body: ", h("code", { text: typeOf(body.schema, spec) })) : null,
      h("div", { class: "answers" }, ...answers));
  }

  function schemaCard(name, schema, spec) {
    const rows = Object.entries(schema.properties || {}).map(([k, v]) => h("tr", {}, h("td", {}, h("code", { text: k })), h("td", { text: typeOf(v, spec) }), h("td", { text: v.description || "" })));
    return h("section", { class: "card op" }, h("div", { class: "card-title" }, h("code", { text: name })), rows.length ? h("table", { class: "eval params" }, ...rows) : null);
  }

  fetch("/api/openapi.json").then((r) => r.json()).then((spec) => {
    const doc = document.getElementById("doc");
    const ops = [];
    for (const [path, methods] of Object.entries(spec.paths)) for (const [m, op] of Object.entries(methods)) ops.push(operation(path, m, op, spec));
    const schemas = Object.entries((spec.components || {}).schemas || {}).filter(([n]) => !/Validation|HTTP/.test(n)).map(([n, s]) => schemaCard(n, s, spec));
    doc.replaceChildren(h("h1", { text: `${spec.info.title} ${spec.info.version}` }), h("p", { class: "muted", text: spec.info.description || "" }), ...ops, h("h2", { text: "Shapes" }), ...schemas);
  }).catch((e) => { document.getElementById("doc").textContent = `The schema could not be loaded: ${e}`; });
})();
