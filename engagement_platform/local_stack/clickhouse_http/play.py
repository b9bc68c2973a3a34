"""``/play``: a page for ad-hoc SQL against the warehouse, in the browser.

A real ClickHouse server ships a web UI at ``/play``; the product promised one on the
ClickHouse port, and chdb has none. This is the project's own: plain HTML and a little
vanilla JavaScript (the machines have no internet, so no CDN). The page itself is
public; each query is a POST to ``/`` with the credentials typed in (Basic auth), so the
server checks them exactly as for any client and stores nothing.
"""

from __future__ import annotations

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>ClickHouse play (engagement-platform)</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 1.5rem; color: #222; }
  h1 { font-size: 1.2rem; margin: 0 0 1rem; }
  #query { width: 100%; height: 9rem; font: 0.95rem ui-monospace, monospace; box-sizing: border-box; }
  .bar { display: flex; gap: 0.75rem; align-items: center; margin: 0.5rem 0 1rem; flex-wrap: wrap; }
  .bar input { width: 10rem; }
  #status { color: #555; }
  #error { color: #b00020; white-space: pre-wrap; font-family: ui-monospace, monospace; }
  #raw { white-space: pre-wrap; font-family: ui-monospace, monospace; }
  table { border-collapse: collapse; font-size: 0.9rem; }
  th, td { border: 1px solid #ccc; padding: 0.2rem 0.5rem; text-align: left; vertical-align: top; }
  th { background: #f3f3f3; }
  th small { color: #777; font-weight: normal; }
  td.null { color: #999; font-style: italic; }
</style>
</head>
<body>
<h1>ClickHouse play &mdash; ad-hoc SQL on the warehouse</h1>
<form id="form" autocomplete="off">
  <textarea id="query" name="query" spellcheck="false" aria-label="SQL query"
    >SELECT name, engine, total_rows FROM system.tables WHERE database = currentDatabase()</textarea>
  <div class="bar">
    <label>user <input id="user" name="user" value="default"></label>
    <label>password <input id="password" name="password" type="password"></label>
    <button id="run" type="submit">Run</button>
    <span id="status">Ctrl-Enter runs the query</span>
  </div>
</form>
<div id="error"></div>
<div id="raw"></div>
<div id="result"></div>
<script>
"use strict";
const $ = (id) => document.getElementById(id);

function basicAuth(user, password) {
  const bytes = new TextEncoder().encode(user + ":" + password);
  let binary = "";
  bytes.forEach((b) => { binary += String.fromCharCode(b); });
  return "Basic " + btoa(binary);
}

function cell(row, value) {
  const td = row.insertCell();
  if (value === null) { td.textContent = "NULL"; td.className = "null"; }
  else if (typeof value === "object") { td.textContent = JSON.stringify(value); }
  else { td.textContent = String(value); }
}

function showTable(result) {
  const table = document.createElement("table");
  const head = table.createTHead().insertRow();
  for (const column of result.meta) {
    const th = document.createElement("th");
    th.textContent = column.name + " ";
    const type = document.createElement("small");
    type.textContent = column.type;
    th.appendChild(type);
    head.appendChild(th);
  }
  const body = table.createTBody();
  for (const values of result.data) {
    const row = body.insertRow();
    values.forEach((value) => cell(row, value));
  }
  $("result").appendChild(table);
}

async function run() {
  $("error").textContent = ""; $("raw").textContent = ""; $("result").textContent = "";
  $("status").textContent = "running...";
  const started = performance.now();
  try {
    const response = await fetch("/?default_format=JSONCompact", {
      method: "POST",
      headers: { "Authorization": basicAuth($("user").value, $("password").value) },
      body: $("query").value,
    });
    const text = await response.text();
    const seconds = ((performance.now() - started) / 1000).toFixed(3);
    if (!response.ok) {
      $("error").textContent = text;
      $("status").textContent = "failed (HTTP " + response.status + ") in " + seconds + " s";
      return;
    }
    let result = null;
    if ((response.headers.get("X-ClickHouse-Format") || "") === "JSONCompact") {
      try { result = JSON.parse(text); } catch (e) { result = null; }
    }
    if (result && result.meta) {
      showTable(result);
      $("status").textContent = result.rows + " row(s) in " + seconds + " s";
    } else {
      $("raw").textContent = text || "Ok.";
      $("status").textContent = "done in " + seconds + " s";
    }
  } catch (e) {
    $("error").textContent = String(e);
    $("status").textContent = "failed";
  }
}

$("form").addEventListener("submit", (event) => { event.preventDefault(); run(); });
$("query").addEventListener("keydown", (event) => {
  if ((event.ctrlKey || event.metaKey) && event.key === "Enter") { event.preventDefault(); run(); }
});
</script>
</body>
</html>
"""
