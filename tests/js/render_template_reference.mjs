// The reference renderer for tests/jinja_test.cpp: @huggingface/jinja, as
// transformers.js's apply_chat_template uses it.
// Usage: node render_template_reference.mjs CASES.json
// CASES.json: a list of {"template": "...", "context": {...}}. Prints a JSON
// list with, for each case, {"text": "..."} or {"error": "..."}.
import { readFileSync } from "node:fs";
import { Template } from "@huggingface/jinja";

const cases = JSON.parse(readFileSync(process.argv[2], "utf8"));
const out = cases.map(({ template, context }) => {
  try {
    return { text: new Template(template).render(context) };
  } catch (e) {
    return { error: String(e.message).slice(0, 200) };
  }
});
process.stdout.write(JSON.stringify(out));
