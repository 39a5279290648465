// The pages `strata serve` shows (coordinator/api/dashboard, chat_page), in
// a real browser: headless Chromium, driven by chromedriver for the chat.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>
#include <thread>

#include "tests/browser.h"
#include "tests/serve_util.h"
#include "tests/test_util.h"

namespace strata {
namespace {

using json = nlohmann::json;
using testing::Http;
using testing::Reply;
using testing::RunProcess;
using testing::Server;

// The dashboard in headless Chromium (Debian's): it renders the pipeline's
// nodes, and its live figures move under load. A screenshot is kept at
// build/dashboard.png.
TEST(DashboardTest, TheDashboardShowsTheClusterAndLiveFigures) {
  ASSERT_EQ(::access("/usr/bin/chromium", X_OK), 0) << "no /usr/bin/chromium: scripts/setup.sh installs Debian's chromium";
  Server server;
  std::atomic<bool> stop{false};
  std::thread load([&]() {
    while (!stop) Http(server.url() + "/v1/completions", R"({"prompt":"And","max_tokens":60})");
  });
  auto dom = [&]() {
    return RunProcess({"/usr/bin/chromium", "--headless=new", "--no-sandbox", "--disable-gpu", "--user-data-dir=" +
                       testing::TempRoot() + "/strata-chromium-" + std::to_string(::getpid()),
                       "--virtual-time-budget=3000", "--dump-dom", server.url() + "/"}, 90).out;
  };
  auto total = [](const std::string& html) -> long {
    std::smatch m;
    return std::regex_search(html, m, std::regex("id=\"tokens-total\">([0-9]+)<")) ? std::stol(m[1].str()) : -1;
  };
  const std::string first = dom();
  std::string second;
  testing::WaitFor(
      [&]() {
        second = dom();
        return total(second) > total(first);
      },
      60);
  const std::string shot = testing::BinDir() + "/../dashboard.png";
  auto r = RunProcess({"/usr/bin/chromium", "--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1100,800",
                       "--user-data-dir=" + testing::TempRoot() + "/strata-chromium-" + std::to_string(::getpid()),
                       "--virtual-time-budget=3000", "--screenshot=" + shot, server.url() + "/"}, 90);
  stop = true;
  load.join();
  std::filesystem::remove_all(testing::TempRoot() + "/strata-chromium-" + std::to_string(::getpid()));
  for (const std::string& html : {first, second}) {
    EXPECT_NE(html.find("stage 0: local-0"), std::string::npos) << html.substr(0, 3000);
    EXPECT_NE(html.find("stage 1: local-1"), std::string::npos);
    EXPECT_NE(html.find("layers [0, 3)"), std::string::npos);
    EXPECT_NE(html.find("<span id=\"error\"></span>"), std::string::npos) << "the page reached its data";
  }
  EXPECT_GT(total(first), 0) << "tokens were generated under load";
  EXPECT_GT(total(second), total(first)) << "the live figures move";
  ASSERT_TRUE(std::filesystem::exists(shot)) << r.err;
  EXPECT_GT(std::filesystem::file_size(shot), 10000u) << "a real screenshot";
}

// Behind an API key the dashboard takes the key from the fragment (never
// sent to the server, so never in its logs or a Referer) and reaches its
// data with it; without the key it says it cannot.
TEST(DashboardTest, TheKeyComesInTheFragment) {
  ASSERT_EQ(::access("/usr/bin/chromium", X_OK), 0) << "no /usr/bin/chromium: scripts/setup.sh installs Debian's chromium";
  testing::TempDir dir;
  std::ofstream(dir / "key") << "0123456789abcdef-key\n";
  ::chmod((dir / "key").c_str(), 0600);
  Server server({"--api-key-file", dir / "key"});
  const std::string profile = testing::TempRoot() + "/strata-chromium-key-" + std::to_string(::getpid());
  auto dom = [&](const std::string& url) {
    return RunProcess({"/usr/bin/chromium", "--headless=new", "--no-sandbox", "--disable-gpu", "--user-data-dir=" + profile,
                       "--virtual-time-budget=3000", "--dump-dom", url}, 90).out;
  };
  const std::string keyed = dom(server.url() + "/#key=0123456789abcdef-key");
  const std::string keyless = dom(server.url() + "/");
  std::filesystem::remove_all(profile);
  EXPECT_NE(keyed.find("stage 0: local-0"), std::string::npos) << keyed.substr(0, 3000);
  EXPECT_NE(keyed.find("<span id=\"error\"></span>"), std::string::npos) << "the page reached its data";
  EXPECT_EQ(keyless.find("<span id=\"error\"></span>"), std::string::npos) << "without the key: an error shown";
}

// The chat page in headless Chromium: it opens with a question, streams the
// answer through /v1/chat/completions and shows its tokens/s, the answer
// being the API's own for the same request; Stop cuts an answer short and
// Clear empties the conversation. A screenshot is kept beside the build.
TEST(DashboardTest, TheChatPageStreamsAnAnswer) {
  ASSERT_EQ(::access("/usr/bin/chromedriver", X_OK), 0) << "no chromedriver: scripts/setup.sh installs chromium-driver";
  Server server;
  testing::Browser browser;
  ASSERT_TRUE(browser.ok());
  browser.Open(server.url() + "/chat#ask=In%20the%20beginning&temperature=0&max_tokens=24");
  ASSERT_TRUE(browser.WaitFor("return document.body.dataset.answers === '1'", 60)) << browser.Run("return document.body.innerHTML");
  const json page = browser.Run(
      "return {user: document.querySelector('.msg.user .text').textContent,"
      " answer: document.querySelector('.msg.assistant .text').textContent,"
      " stats: document.getElementById('last-stats').textContent, model: document.getElementById('model').textContent}");
  const Reply api = Http(server.url() + "/v1/chat/completions",
                         R"({"messages":[{"role":"user","content":"In the beginning"}],"temperature":0,"max_tokens":24})");
  ASSERT_EQ(api.status, 200) << api.body;
  const json answer = json::parse(api.body);
  EXPECT_EQ(page["user"], "In the beginning");
  EXPECT_EQ(page["answer"], answer["choices"][0]["message"]["content"]);
  const std::string n = std::to_string(answer["usage"]["completion_tokens"].get<int>());
  EXPECT_TRUE(std::regex_search(page["stats"].get<std::string>(), std::regex("^" + n + " tokens · [0-9.]+ tok/s")))
      << page["stats"];
  EXPECT_EQ(page["model"], "kjv-5m");
  browser.Screenshot(testing::BinDir() + "/../chat.png");
  EXPECT_GT(std::filesystem::file_size(testing::BinDir() + "/../chat.png"), 10000u) << "a real screenshot";
  // A second question, stopped as soon as it is sent; then Clear.
  browser.Run("document.getElementById('max-tokens').value = 2000; document.getElementById('input').value = 'And God said';"
              " document.getElementById('form').requestSubmit(); document.getElementById('stop').click(); return 0");
  ASSERT_TRUE(browser.WaitFor("return document.body.dataset.answers === '2'", 60));
  EXPECT_NE(browser.Run("return document.getElementById('last-stats').textContent").get<std::string>().find("stopped"),
            std::string::npos);
  browser.Run("document.getElementById('clear').click(); return 0");
  EXPECT_EQ(browser.Run("return document.querySelectorAll('.msg').length"), 0);
}

}  // namespace
}  // namespace strata
