// Load for `strata serve`: C concurrent clients, N streamed completions in
// all, each timed (first token, inter-token gaps). Prints one JSON object.
// usage: node serve_load.mjs URL CONCURRENCY REQUESTS MAX_TOKENS
const [url, concurrency, total, maxTokens] = [process.argv[2], +process.argv[3], +process.argv[4], +process.argv[5]];
const ttft = [], itl = [];
let tokens = 0, failed = 0, next = 0;

async function one(i) {
  const t0 = performance.now();
  const res = await fetch(`${url}/v1/completions`, {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ prompt: "The licence", max_tokens: maxTokens, temperature: 0.8, seed: i, stream: true,
                           stream_options: { include_usage: true } }) });
  if (res.status !== 200) { failed++; await res.text(); return; }
  const decoder = new TextDecoder();
  let buf = "", last = null;
  for await (const part of res.body) {
    buf += decoder.decode(part, { stream: true });
    let end;
    while ((end = buf.indexOf("\n\n")) >= 0) {
      const event = buf.slice(0, end); buf = buf.slice(end + 2);
      if (!event.startsWith("data: ") || event === "data: [DONE]") continue;
      const chunk = JSON.parse(event.slice(6));
      if (chunk.usage) { tokens += chunk.usage.completion_tokens; continue; }
      const now = performance.now();
      if (last === null) ttft.push((now - t0) / 1000); else itl.push((now - last) / 1000);
      last = now;
    }
  }
}

async function client() { while (next < total) await one(next++).catch(() => failed++); }
const start = performance.now();
await Promise.all(Array.from({ length: concurrency }, client));
const seconds = (performance.now() - start) / 1000;
const pct = (a, p) => { if (!a.length) return null; const s = [...a].sort((x, y) => x - y); return s[Math.min(s.length - 1, Math.floor(p * s.length))]; };
console.log(JSON.stringify({ concurrency, requests: total, failed, tokens, seconds, tokens_per_s: tokens / seconds,
  ttft_p50_s: pct(ttft, 0.5), ttft_p99_s: pct(ttft, 0.99), itl_p50_s: pct(itl, 0.5), itl_p99_s: pct(itl, 0.99) }));
