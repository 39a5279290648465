#pragma once
// ChatFormat: how a model writes a conversation as its prompt. The model's
// own Jinja chat template (tokenizer_config.json's chat_template, or a GGUF
// file's tokenizer.chat_template), rendered as apply_chat_template renders
// it; else, for a model without one, the template family its tokenizer
// suggests (openai_api's ChatTemplate). Messages' content comes out
// untrusted: the tokenizer reads special tokens only in the template's text.
// Immutable once made; thread-safe.
#include <memory>
#include <string>
#include <vector>

#include "base/status.h"
#include "coordinator/api/openai_api.h"
#include "coordinator/pipeline/tokenizer.h"

namespace strata {

class GgufFile;
namespace text::jinja { class Template; }

struct ChatPrompt {
  std::vector<TextPart> parts;
  bool add_bos = false;  // the tokenizer's BOS goes first (a Jinja template writes its own)
};

class ChatFormat {
 public:
  // A template that does not parse is an error naming its file.
  static Result<std::unique_ptr<ChatFormat>> ForModel(const std::string& model_dir, const GgufFile* gguf,
                                                      const Tokenizer& tokenizer);
  ~ChatFormat();

  Result<ChatPrompt> Render(const std::vector<ChatMessage>& messages, bool add_generation_prompt = true) const;
  std::string name() const;  // "jinja" or the family's name

 private:
  ChatFormat() = default;
  std::unique_ptr<text::jinja::Template> jinja_;
  ChatTemplate family_ = ChatTemplate::kChatMl;
  std::string bos_token_, eos_token_;
};

}  // namespace strata
