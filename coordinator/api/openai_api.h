#pragma once
// The OpenAI-compatible API's requests and responses, as pure functions:
// a request body is validated field by field (types, ranges, sizes) before
// anything is allocated or computed, and every failure is one OpenAI-style
// error body naming the field. No I/O here: coordinator/api/api_server serves it.
//
// Thread-safe: values, and pure functions.
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/status.h"

#include "coordinator/pipeline/tokenizer.h"

namespace strata {


constexpr size_t kMaxRequestBodyBytes = 1u << 20;

struct ChatMessage {
  std::string role;     // system | user | assistant
  std::string content;
};

struct CompletionParams {
  bool chat = false;                 // /v1/chat/completions
  std::string prompt;                // /v1/completions
  std::vector<ChatMessage> messages; // /v1/chat/completions
  int64_t max_tokens = 16;           // OpenAI's default for completions
  double temperature = 1.0;
  double top_p = 1.0;
  int64_t top_k = 0;                 // an extension, as vLLM's
  uint64_t seed = 0;
  bool seeded = false;
  std::vector<std::string> stop;
  bool stream = false;
  bool include_usage = false;        // stream_options.include_usage
  int64_t logprobs = -1;             // -1: none; completions: 0..5
  std::string user;
  std::string model;
};

// An API error: HTTP status, OpenAI's "type", the parameter at fault.
struct ApiError {
  int status = 400;
  std::string message;
  std::string type = "invalid_request_error";
  std::string param;
  std::string Body() const;  // {"error": {...}}
};

// Parses and validates a body. `max_context` bounds max_tokens.
bool ParseCompletion(const std::string& body, bool chat, int64_t max_context, CompletionParams* out, ApiError* error);

// The chat prompt, in the model's template: the family its
// tokenizer_config.json's chat_template names (ChatML, Llama-2, Zephyr,
// Llama-3, or Strata's plain one), else ChatML when the tokenizer knows
// <|im_start|>, else Llama-2.
enum class ChatTemplate { kChatMl, kLlama2, kZephyr, kLlama3, kPlain };
ChatTemplate DetectChatTemplate(const std::string& tokenizer_config_json, bool knows_im_start);
// The prompt as parts: the template's own text trusted (its markers become
// special tokens), every message's content untrusted (a user cannot forge
// <|im_start|>system). RenderChat is the same text joined.
std::vector<TextPart> RenderChatParts(ChatTemplate t, const std::vector<ChatMessage>& messages);
std::string RenderChat(ChatTemplate t, const std::vector<ChatMessage>& messages);

const char* ChatTemplateName(ChatTemplate t);

}  // namespace strata
