#include "coordinator/api/chat_page.h"

#include "coordinator/api/page_key.h"

namespace strata {

const char* const kChatPageHtml = R"HTML(<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Strata chat</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
 body{font:15px system-ui,sans-serif;margin:0;background:#fafafa;color:#222;display:flex;flex-direction:column;height:100vh}
 header{padding:10px 16px;border-bottom:1px solid #ddd;background:#fff} header a{color:#4a7}
 #log{flex:1;overflow-y:auto;padding:16px}
 .msg{max-width:760px;margin:0 auto 12px;padding:10px 12px;border-radius:8px;white-space:pre-wrap;word-wrap:break-word}
 .user{background:#e8f3ec;border:1px solid #cfe3d6} .assistant{background:#fff;border:1px solid #ddd}
 .stats{font-size:12px;color:#777;margin-top:6px;white-space:normal}
 form{display:flex;gap:8px;padding:12px 16px;border-top:1px solid #ddd;background:#fff;max-width:980px;margin:0 auto;width:calc(100% - 32px)}
 textarea{flex:1;font:inherit;padding:8px;min-height:44px;resize:vertical}
 button{font:inherit;padding:6px 14px} .muted{color:#777;font-size:13px} input{width:64px}
</style></head><body>
<header><b>Strata chat</b> <span id="model" class="muted"></span> · <a href="/">dashboard</a>
 <span class="muted">· max tokens <input id="max-tokens" type="number" value="256" min="1">
 temperature <input id="temperature" type="number" value="0.7" min="0" max="2" step="0.1"></span>
 <span id="error" class="muted"></span></header>
<div id="log"></div>
<form id="form"><textarea id="input" placeholder="Message (Enter sends, Shift+Enter: a new line)"></textarea>
<button id="send" type="submit">Send</button><button id="stop" type="button" disabled>Stop</button>
<button id="clear" type="button">Clear</button></form>
<script>
"use strict";
)HTML" STRATA_PAGE_KEY_SCRIPT R"HTML(const auth = key ? {Authorization: "Bearer " + key} : {};
const $ = (id) => document.getElementById(id);
let messages = [], controller = null;

function bubble(role, text) {
  const d = document.createElement("div");
  d.className = "msg " + role;
  const body = document.createElement("span");
  body.className = "text";
  body.textContent = text;
  d.appendChild(body);
  $("log").appendChild(d);
  $("log").scrollTop = $("log").scrollHeight;
  return d;
}

function busy(on) {
  $("send").disabled = on;
  $("stop").disabled = !on;
}

async function ask(text) {
  messages.push({role: "user", content: text});
  bubble("user", text);
  const answer = bubble("assistant", "");
  const body = answer.querySelector(".text");
  const stats = document.createElement("div");
  stats.className = "stats";
  answer.appendChild(stats);
  controller = new AbortController();
  busy(true);
  $("error").textContent = "";
  const t0 = performance.now();
  let first = 0, tokens = 0, usage = null, reply = "", stopped = false;
  try {
    const r = await fetch("/v1/chat/completions", {
      method: "POST", signal: controller.signal,
      headers: Object.assign({"Content-Type": "application/json"}, auth),
      body: JSON.stringify({messages, stream: true, stream_options: {include_usage: true},
                            max_tokens: Number($("max-tokens").value) || 256,
                            temperature: Number($("temperature").value)})});
    if (!r.ok) throw new Error((await r.json().catch(() => ({}))).error?.message || "HTTP " + r.status);
    const reader = r.body.getReader(), decoder = new TextDecoder();
    let pending = "";
    for (;;) {
      const {value, done} = await reader.read();
      if (done) break;
      pending += decoder.decode(value, {stream: true});
      let cut;
      while ((cut = pending.indexOf("\n\n")) >= 0) {
        const event = pending.slice(0, cut);
        pending = pending.slice(cut + 2);
        for (const line of event.split("\n")) {
          if (!line.startsWith("data: ") || line === "data: [DONE]") continue;
          const chunk = JSON.parse(line.slice(6));
          if (chunk.usage) usage = chunk.usage;
          const delta = chunk.choices && chunk.choices[0] && chunk.choices[0].delta;
          if (delta && delta.content) {
            if (!first) first = performance.now();
            tokens++;
            reply += delta.content;
            body.textContent = reply;
            $("log").scrollTop = $("log").scrollHeight;
          }
        }
      }
    }
  } catch (e) {
    if (e.name === "AbortError") stopped = true;
    else $("error").textContent = "· " + e.message;
  }
  const n = usage ? usage.completion_tokens : tokens;
  const seconds = first ? (performance.now() - first) / 1000 : 0;
  const tps = seconds > 0 && n > 1 ? (n - 1) / seconds : 0;
  const previous = $("last-stats");
  if (previous) previous.removeAttribute("id");
  stats.id = "last-stats";
  stats.textContent = n + " tokens · " + tps.toFixed(1) + " tok/s · first token " +
                      (first ? ((first - t0) / 1000).toFixed(2) + " s" : "–") + (stopped ? " · stopped" : "");
  messages.push({role: "assistant", content: reply});
  controller = null;
  busy(false);
  document.body.dataset.answers = String(messages.length / 2);
}

$("form").addEventListener("submit", (e) => {
  e.preventDefault();
  const text = $("input").value.trim();
  if (!text || controller) return;
  $("input").value = "";
  ask(text);
});
$("input").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); $("form").requestSubmit(); }
});
$("stop").addEventListener("click", () => controller && controller.abort());
$("clear").addEventListener("click", () => {
  if (controller) controller.abort();
  messages = [];
  $("log").textContent = "";
});
fetch("/v1/models", {headers: auth}).then((r) => r.json()).then((m) => { $("model").textContent = m.data[0].id; })
  .catch(() => {});
// #ask=TEXT[&temperature=T&max_tokens=N]: a link that opens with a question.
const opening = new URLSearchParams(location.hash.slice(1));
if (opening.has("temperature")) $("temperature").value = opening.get("temperature");
if (opening.has("max_tokens")) $("max-tokens").value = opening.get("max_tokens");
if (opening.get("ask")) ask(opening.get("ask"));
</script></body></html>
)HTML";

}  // namespace strata
