#pragma once
// The chat page `strata serve` shows at `/chat`, as llama-server and exo
// have one: a conversation streamed through /v1/chat/completions (so in the
// model's own chat template), each answer's tokens/s, stop and clear
// buttons. One self-contained HTML page (no external scripts, fonts or
// styles); text is only ever set as text, never as HTML. /chat#key=KEY
// sends the key as its bearer token (kept by the tab, as the dashboard does); /chat#ask=TEXT&temperature=T&max_tokens=N
// asks TEXT on opening.
namespace strata {

extern const char* const kChatPageHtml;

}  // namespace strata
