#include "coordinator/api/dashboard.h"

#include "coordinator/api/page_key.h"

namespace strata {

const char* const kDashboardHtml = R"HTML(<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Strata</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
 body{font:14px system-ui,sans-serif;margin:20px;background:#fafafa;color:#222}
 h1{font-size:20px;margin:0 0 4px} .muted{color:#777}
 .row{display:flex;gap:12px;flex-wrap:wrap;margin:12px 0}
 .card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:10px 12px;min-width:180px}
 .node.down{border-color:#c33;background:#fff3f3} .big{font-size:22px;font-weight:600}
 .bar{height:8px;background:#eee;border-radius:4px;overflow:hidden;margin:3px 0 6px}
 .bar>div{height:100%;background:#4a7} table{border-collapse:collapse;background:#fff}
 td,th{border:1px solid #ddd;padding:4px 8px;text-align:left} canvas{background:#fff;border:1px solid #ddd;border-radius:6px}
</style></head><body>
<h1>Strata <span id="model" class="muted"></span> <a id="chat-link" href="/chat" style="font-size:14px;color:#4a7">chat</a></h1>
<div class="muted">updated <span id="updated">never</span> · <span id="error"></span></div>
<div class="row">
 <div class="card"><div class="muted">tokens/s</div><div class="big" id="tps">0</div></div>
 <div class="card"><div class="muted">generated tokens</div><div class="big" id="tokens-total">0</div></div>
 <div class="card"><div class="muted">requests running / waiting</div><div class="big" id="running">0 / 0</div></div>
 <div class="card"><div class="muted">mean time to first token</div><div class="big" id="ttft">–</div></div>
 <div class="card"><div class="muted">mean inter-token latency</div><div class="big" id="itl">–</div></div>
</div>
<div class="row"><canvas id="chart-tps" width="420" height="110"></canvas><canvas id="chart-itl" width="420" height="110"></canvas></div>
<h2 style="font-size:16px">Pipeline</h2><div class="row" id="nodes"></div>
<h2 style="font-size:16px">Requests in flight</h2>
<table><thead><tr><th>id</th><th>prompt tokens</th><th>generated</th><th>age</th></tr></thead><tbody id="requests"></tbody></table>
<script>
"use strict";
)HTML" STRATA_PAGE_KEY_SCRIPT R"HTML(const headers = key ? {Authorization: "Bearer " + key} : {};
const history = {tps: [], itl: []};
let last = null;
const fmt = (s) => s == null ? "–" : (s < 1 ? (s * 1000).toFixed(1) + " ms" : s.toFixed(2) + " s");
const mib = (b) => (b / 1048576).toFixed(0) + " MiB";
function esc(t) { const d = document.createElement("div"); d.textContent = String(t); return d.innerHTML; }
function chart(id, data, label) {
  const c = document.getElementById(id), g = c.getContext("2d");
  g.clearRect(0, 0, c.width, c.height);
  const max = Math.max(1e-9, ...data);
  g.strokeStyle = "#4a7"; g.lineWidth = 2; g.beginPath();
  data.forEach((v, i) => { const x = i * c.width / 59, y = c.height - 18 - v / max * (c.height - 30);
                           i ? g.lineTo(x, y) : g.moveTo(x, y); });
  g.stroke(); g.fillStyle = "#555"; g.font = "12px system-ui";
  g.fillText(label + " (max " + (data.length ? max.toPrecision(3) : 0) + ")", 6, c.height - 4);
}
async function poll() {
  try {
    const r = await fetch("/v1/strata/status", {headers});
    if (!r.ok) throw new Error("HTTP " + r.status);
    const s = await r.json();
    document.getElementById("model").textContent = s.model;
    document.getElementById("tokens-total").textContent = s.generation_tokens;
    document.getElementById("running").textContent = s.running + " / " + s.waiting;
    document.getElementById("ttft").textContent = fmt(s.ttft_mean_s);
    document.getElementById("itl").textContent = fmt(s.itl_mean_s);
    if (last) {
      const dt = (s.now_s - last.now_s) || 1;
      const tps = (s.generation_tokens - last.generation_tokens) / dt;
      const itl = s.itl_count > last.itl_count ? (s.itl_sum_s - last.itl_sum_s) / (s.itl_count - last.itl_count) : 0;
      history.tps.push(tps); history.itl.push(itl * 1000);
      for (const k in history) if (history[k].length > 60) history[k].shift();
      document.getElementById("tps").textContent = tps.toFixed(1);
    }
    last = s;
    chart("chart-tps", history.tps, "tokens/s");
    chart("chart-itl", history.itl, "inter-token ms");
    document.getElementById("nodes").innerHTML = s.nodes.map((n) =>
      '<div class="card node' + (n.up ? "" : " down") + '"><b>stage ' + n.stage + ": " + esc(n.name) + "</b>" +
      '<div class="muted">' + esc(n.address) + " · layers [" + n.first_layer + ", " + n.end_layer + ") · " +
      (n.up ? "up" : "DOWN") + " · " + n.sessions + " sessions</div>" +
      n.tiers.map((t) => esc(t.tier) + " " + mib(t.used) + " / " + mib(t.budget) +
        '<div class="bar"><div style="width:' + Math.min(100, 100 * t.used / Math.max(1, t.budget)) + '%"></div></div>').join("") +
      "</div>").join("");
    document.getElementById("requests").innerHTML = s.requests.map((q) =>
      "<tr><td>" + esc(q.id) + "</td><td>" + q.prompt_tokens + "</td><td>" + q.generated + "</td><td>" +
      fmt(q.age_s) + "</td></tr>").join("");
    document.getElementById("updated").textContent = new Date().toLocaleTimeString();
    document.getElementById("error").textContent = "";
  } catch (e) {
    document.getElementById("error").textContent = "cannot reach the coordinator: " + e.message;
  }
}
poll();
setInterval(poll, 1000);
</script></body></html>
)HTML";

}  // namespace strata
