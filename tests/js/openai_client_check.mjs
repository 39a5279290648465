// The official openai client against `strata serve`, as a user calls it.
// usage: node openai_client_check.mjs http://HOST:PORT/v1
import OpenAI from "openai";
import assert from "node:assert/strict";

const client = new OpenAI({ baseURL: process.argv[2], apiKey: process.env.STRATA_API_KEY ?? "none", maxRetries: 0 });

const models = await client.models.list();
assert.ok(models.data.length === 1 && models.data[0].id, "one model listed");
const model = models.data[0].id;

const done = await client.completions.create({ model, prompt: "And God said", max_tokens: 8, temperature: 0 });
assert.equal(done.object, "text_completion");
assert.ok(done.choices[0].text.length > 0, "text");
assert.equal(done.usage.completion_tokens, 8);

let streamed = "";
const stream = await client.completions.create({ model, prompt: "And God said", max_tokens: 8, temperature: 0, stream: true });
for await (const chunk of stream) streamed += chunk.choices[0]?.text ?? "";
assert.equal(streamed, done.choices[0].text, "streamed text equals the whole reply");

const chat = await client.chat.completions.create({
  model, messages: [{ role: "user", content: "In the beginning" }], max_tokens: 6, temperature: 0, seed: 1 });
assert.equal(chat.choices[0].message.role, "assistant");
assert.ok(chat.choices[0].message.content.length > 0);

let chatStreamed = "";
const chatStream = await client.chat.completions.create({
  model, messages: [{ role: "user", content: "In the beginning" }], max_tokens: 6, temperature: 0, seed: 1, stream: true });
for await (const chunk of chatStream) chatStreamed += chunk.choices[0]?.delta?.content ?? "";
assert.equal(chatStreamed, chat.choices[0].message.content);

await assert.rejects(client.completions.create({ model, prompt: "x", max_tokens: 1, temperature: 7 }),
                     (e) => e.status === 400 && /temperature/.test(e.message));
console.log("ok:", JSON.stringify(done.choices[0].text), JSON.stringify(chat.choices[0].message.content));
