#include "coordinator/cli/tokenize_command.h"

#include <fstream>
#include <iostream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "base/escape.h"
#include "coordinator/api/chat_format.h"
#include "coordinator/api/openai_api.h"
#include "coordinator/cli/command_output.h"
#include "coordinator/cli/flags.h"
#include "coordinator/cluster/resolve_model.h"
#include "coordinator/pipeline/tokenizer.h"
#include "storage/checkpoint.h"

namespace strata {
namespace {

using nlohmann::json;

constexpr size_t kMaxInputBytes = 64u << 20;

struct TokenizeFlags {
  std::string model;
  ModelSourceFlags source;
  std::string text, file, chat;
  bool json = false;
  bool add_special = false;
};

Result<std::string> ReadInput(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::Error("cannot open " + path);
  std::ostringstream s;
  s << in.rdbuf();
  if (s.tellp() > static_cast<std::streamoff>(kMaxInputBytes)) {
    return Status::Error(path + " is over " + std::to_string(kMaxInputBytes >> 20) + " MiB");
  }
  return s.str();
}

// --chat FILE: a JSON list of {"role", "content"} (or {"messages": [...]}),
// checked as the chat endpoint checks it.
Result<std::vector<ChatMessage>> ReadChat(const std::string& path) {
  auto text = ReadInput(path);
  if (!text.ok()) return text.status();
  const json j = json::parse(text.value(), nullptr, false);
  if (j.is_discarded()) return Status::Error(path + ": not JSON");
  const json body = j.is_array() ? json{{"messages", j}} : j;
  CompletionParams params;
  ApiError api;
  if (!body.is_object() || !ParseCompletion(json{{"messages", body.value("messages", json())}}.dump(), true, INT64_MAX,
                                            &params, &api)) {
    return Status::Error(path + ": " + (api.message.empty() ? "wants a list of {\"role\", \"content\"}" : api.message));
  }
  return std::move(params.messages);
}

}  // namespace

int TokenizeCommand(int argc, char** argv, const std::string& default_model) {
  TokenizeFlags t;
  t.model = default_model;
  FlagSet f("strata tokenize [--model M] (--text T | --file F | --chat MESSAGES.json) [--json] [--add-special]",
            "Tokenizes with the model's tokenizer (tokenizer.json, tokenizer.model or a GGUF file's vocabulary)\n"
            "and prints a line per token: its id and its piece. --json prints one object instead:\n"
            "{\"ids\": [...], \"text\": \"...\"}, where text is the rendered prompt for --chat and the input otherwise.\n"
            "Special tokens in --text and --file are recognised; in --chat only the template's own are.\n"
            "No BOS is added unless the chat template adds it or --add-special is given.");
  f.String("model", &t.model, "a checkpoint directory, a GGUF file, an http(s) URL or a Hugging Face repo id");
  f.String("model-cache", &t.source.model_cache, "where remote models are mirrored");
  f.String("text", &t.text, "the text to tokenize");
  f.String("file", &t.file, "a file whose text to tokenize");
  f.String("chat", &t.chat, "a JSON list of {\"role\", \"content\"} messages, rendered by the model's chat template");
  f.Bool("json", &t.json, "print {\"ids\": [...], \"text\": \"...\"}");
  f.Bool("add-special", &t.add_special, "prepend BOS as the model does for a prompt");
  std::string error;
  bool help = false;
  if (!f.Parse(argc, argv, 2, &error, &help)) {
    std::cerr << "strata: " << error << "\n";
    return 2;
  }
  if (help) {
    std::cout << f.Help();
    return 0;
  }
  const int inputs = f.WasSet("text") + !t.file.empty() + !t.chat.empty();
  if (inputs != 1) {
    std::cerr << "strata: tokenize needs exactly one of --text, --file and --chat\n";
    return 2;
  }
  auto model = ResolveModel(t.model, t.source);
  if (!model.ok()) return Fail(model.status().message());
  auto ckpt = Checkpoint::Open(model.value());
  if (!ckpt.ok()) return Fail(ckpt.status().message());
  auto tokenizer = Tokenizer::Load(model.value(), ckpt.value()->config(), ckpt.value()->gguf());
  if (!tokenizer.ok()) return Fail(tokenizer.status().message());
  std::vector<TextPart> parts;
  bool add_bos = t.add_special;
  if (!t.chat.empty()) {
    auto messages = ReadChat(t.chat);
    if (!messages.ok()) return Fail(messages.status().message());
    auto format = ChatFormat::ForModel(model.value(), ckpt.value()->gguf(), *tokenizer.value());
    if (!format.ok()) return Fail(format.status().message());
    auto prompt = format.value()->Render(messages.value());
    if (!prompt.ok()) return Fail(prompt.status().message());
    parts = std::move(prompt.value().parts);
  } else {
    auto text = t.file.empty() ? Result<std::string>(t.text) : ReadInput(t.file);
    if (!text.ok()) return Fail(text.status().message());
    parts.push_back({text.value(), true});
  }
  const std::vector<int32_t> ids = tokenizer.value()->EncodeParts(parts, add_bos);
  std::string rendered;
  for (const auto& p : parts) rendered += p.text;
  if (t.json) {
    std::cout << json{{"ids", ids}, {"text", rendered}}.dump(-1, ' ', false, json::error_handler_t::replace) << "\n";
    return 0;
  }
  for (int32_t id : ids) {
    std::cout << id << "\t" << json(tokenizer.value()->Piece(id)).dump(-1, ' ', false, json::error_handler_t::replace) << "\n";
  }
  std::cerr << ids.size() << " tokens (" << tokenizer.value()->kind() << ", " << tokenizer.value()->piece_count()
            << " in the vocabulary)\n";
  return 0;
}

}  // namespace strata
