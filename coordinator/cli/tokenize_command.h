#pragma once
// `strata tokenize`: a model's tokenizer on a text, a file or a chat, as
// llama.cpp's llama-tokenize is: ids and pieces, or one JSON object.
#include <string>

namespace strata {

// `default_model`: the --model when none is given.
int TokenizeCommand(int argc, char** argv, const std::string& default_model);

}  // namespace strata
