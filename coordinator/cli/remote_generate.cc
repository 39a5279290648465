#include "coordinator/cli/remote_generate.h"

#include <curl/curl.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "base/escape.h"

namespace strata {
namespace {

using json = nlohmann::json;

// Splits the SSE stream into events and prints each text delta as it comes.
struct SseReader {
  bool print = true;
  std::string pending, text, error_body;
  json usage, last;
  bool done = false;

  void Feed(const char* data, size_t n) {
    pending.append(data, n);
    for (size_t end; (end = pending.find("\n\n")) != std::string::npos;) {
      const std::string event = pending.substr(0, end);
      pending.erase(0, end + 2);
      if (event.rfind("data: ", 0) != 0) continue;
      const std::string payload = event.substr(6);
      if (payload == "[DONE]") {
        done = true;
        continue;
      }
      const json chunk = json::parse(payload, nullptr, false);
      if (chunk.is_discarded()) continue;
      if (chunk.contains("error")) {
        error_body = chunk["error"].value("message", "an error");
        continue;
      }
      if (chunk.contains("usage") && chunk["usage"].is_object()) usage = chunk["usage"];
      if (!chunk.contains("choices") || chunk["choices"].empty()) continue;
      const auto& choice = chunk["choices"][0];
      if (choice.contains("text") && choice["text"].is_string()) {
        const std::string delta = choice["text"];
        text += delta;
        if (print) std::fwrite(delta.data(), 1, delta.size(), stdout), std::fflush(stdout);
      }
      if (!choice["finish_reason"].is_null()) last = choice;
    }
  }
};

size_t OnData(char* data, size_t size, size_t n, void* user) {
  auto* reader = static_cast<SseReader*>(user);
  if (reader->pending.size() + size * n > (64u << 20)) return 0;  // a server that never frames an event
  reader->Feed(data, size * n);
  return size * n;
}

std::string ApiKey(const std::string& file) {
  if (!file.empty()) {
    std::ifstream in(file);
    std::string key;
    std::getline(in, key);
    return key;
  }
  const char* env = std::getenv("STRATA_API_KEY");
  return env != nullptr ? env : "";
}

}  // namespace

int RunRemoteGenerate(const GenerateFlags& flags) {
  json request = {{"prompt", flags.prompt}, {"max_tokens", flags.max_tokens}, {"temperature", flags.temperature},
                  {"top_p", flags.top_p},   {"top_k", flags.top_k},           {"stream", true},
                  {"stream_options", {{"include_usage", true}}}};
  if (flags.seed != 0) request["seed"] = flags.seed;
  const std::string base = flags.coordinator.rfind("http", 0) == 0 ? flags.coordinator : "http://" + flags.coordinator;
  const std::string url = base + "/v1/completions";
  const std::string body = request.dump();
  SseReader reader;
  reader.print = !flags.json;
  std::unique_ptr<CURL, void (*)(CURL*)> curl(curl_easy_init(), curl_easy_cleanup);
  curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
  const std::string key = ApiKey(flags.api_key_file);
  if (!key.empty()) headers = curl_slist_append(headers, ("Authorization: Bearer " + key).c_str());
  curl_easy_setopt(curl.get(), CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl.get(), CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl.get(), CURLOPT_POSTFIELDS, body.c_str());
  curl_easy_setopt(curl.get(), CURLOPT_WRITEFUNCTION, OnData);
  curl_easy_setopt(curl.get(), CURLOPT_WRITEDATA, &reader);
  curl_easy_setopt(curl.get(), CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(flags.cluster.connect_timeout_ms));
  const auto t0 = std::chrono::steady_clock::now();
  const CURLcode rc = curl_easy_perform(curl.get());
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  long status = 0;
  curl_easy_getinfo(curl.get(), CURLINFO_RESPONSE_CODE, &status);
  curl_slist_free_all(headers);
  if (rc != CURLE_OK) {
    std::cerr << "strata: cannot reach the coordinator at " << EscapeText(base) << ": " << curl_easy_strerror(rc) << "\n";
    return 1;
  }
  if (status != 200 || !reader.error_body.empty() || !reader.done) {
    const json error = json::parse(reader.pending, nullptr, false);
    const std::string why = !reader.error_body.empty() ? reader.error_body
                            : !error.is_discarded() && error.contains("error")
                                ? error["error"].value("message", "")
                                : "HTTP " + std::to_string(status);
    std::cerr << "\nstrata: the coordinator at " << EscapeText(base) << " answered: " << EscapeText(why, 500) << "\n";
    return 1;
  }
  const int64_t generated = reader.usage.value("completion_tokens", 0);
  if (flags.json) {
    std::cout << json{{"text", reader.text}, {"usage", reader.usage}, {"seconds", seconds},
                      {"finish_reason", reader.last.value("finish_reason", "")}}
                     .dump()
              << std::endl;
  } else {
    std::cout << std::endl;
    std::fprintf(stderr, "--- strata: %lld tokens from %s in %.2f s (%.1f tok/s), %s\n",
                 static_cast<long long>(generated), base.c_str(), seconds, seconds > 0 ? generated / seconds : 0.0,
                 reader.last.value("finish_reason", "?").c_str());
  }
  return 0;
}

}  // namespace strata
