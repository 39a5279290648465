// Model sources: `--model` as an http(s) URL of a model directory or as a
// Hugging Face repo id on an HF-compatible endpoint (a real ModelServer with
// --repo-id, over real HTTP on loopback). The coordinator's mirror holds
// exactly the source's bytes, checked against the hashes the source publishes
// (SHA-256 for weights, git blob SHA-1 for the rest, SHA256SUMS for a plain
// URL); bytes corrupted in transit are fetched again and never used; 500s and
// early closes are retried, an interrupted file resumes; a wrong token, an
// unknown repo and a full disk each fail with one clear error; a warm mirror
// transfers nothing.
#include "storage/model_source.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "storage/fault_env.h"
#include "storage/model_manifest.h"
#include "tests/model_server_thread.h"
#include "tests/test_util.h"

namespace strata {
namespace {

namespace fs = std::filesystem;
using testing::ServerThread;
using testing::TempDir;

PosixEnv posix_;

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

class ModelSourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    TestModelSpec spec;
    spec.layers = 3;
    testing::MakeModel(model_.path(), spec);
    auto manifest = BuildManifest(model_.path());
    ASSERT_TRUE(manifest.ok()) << manifest.status().message();
    manifest_ = manifest.value();
  }
  MirrorOptions Options(const std::string& endpoint) {
    MirrorOptions o;
    o.cache_dir = cache_.path();
    o.hf_endpoint = endpoint;
    o.backoff_ms = 10;
    return o;
  }
  ModelRef Hub() { return ParseModelRef("acme/tiny").value(); }
  void ExpectSameFiles(const std::string& mirror) {
    for (const char* name : {"config.json", "model.safetensors", "tokenizer.model"}) {
      ASSERT_TRUE(fs::exists(mirror + "/" + name)) << name;
      EXPECT_EQ(ReadAll(mirror + "/" + name), ReadAll(model_.path() + "/" + name)) << name;
    }
    for (const auto& entry : fs::directory_iterator(mirror)) {
      EXPECT_EQ(entry.path().extension(), entry.path().extension() == ".partial" ? "" : entry.path().extension())
          << "no partial file is left in a complete mirror";
    }
  }
  TempDir model_, cache_;
  ModelManifest manifest_;
};

TEST(ModelRefTest, DirectoriesUrlsAndRepoIds) {
  TempDir dir;
  auto local = ParseModelRef(dir.path());
  ASSERT_TRUE(local.ok());
  EXPECT_EQ(local->kind, ModelRef::Kind::kLocal);
  auto url = ParseModelRef("https://example.org/models/tiny/");
  ASSERT_TRUE(url.ok());
  EXPECT_EQ(url->kind, ModelRef::Kind::kUrl);
  EXPECT_EQ(url->location, "https://example.org/models/tiny");
  auto hub = ParseModelRef("TinyLlama/TinyLlama-1.1B-Chat-v1.0@v2");
  ASSERT_TRUE(hub.ok());
  EXPECT_EQ(hub->kind, ModelRef::Kind::kHub);
  EXPECT_EQ(hub->location, "TinyLlama/TinyLlama-1.1B-Chat-v1.0");
  EXPECT_EQ(hub->revision, "v2");
  for (const char* bad : {"", "tiny", "../../etc/passwd", "a/b/c", "a/..", "a b/c", "/no/such/dir", "ftp://x/y"}) {
    auto r = ParseModelRef(bad);
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) EXPECT_NE(r.status().message().find("not an http(s) URL or a repo id"), std::string::npos);
  }
}

TEST_F(ModelSourceTest, HubRepoIsMirroredVerifiedAndAWarmMirrorTransfersNothing) {
  ServerThread hub(model_.path(), manifest_, "tok", {}, "acme/tiny");
  MirrorOptions o = Options(hub.url());
  o.token = "tok";
  auto first = MirrorModel(posix_, Hub(), o);
  ASSERT_TRUE(first.ok()) << first.status().message();
  ExpectSameFiles(first->dir);
  EXPECT_GE(first->files, 4);
  EXPECT_EQ(first->files_verified, first->files) << "the endpoint publishes a hash for every file";
  EXPECT_GT(first->fetched_bytes, 0u);
  auto again = MirrorModel(posix_, Hub(), o);
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_EQ(again->dir, first->dir);
  EXPECT_EQ(again->fetched_bytes, 0u);
  // The mirror is a model directory like any other: its manifest is the source's.
  auto mirrored = BuildManifest(first->dir);
  ASSERT_TRUE(mirrored.ok());
  EXPECT_EQ(mirrored->id, manifest_.id);
}

TEST_F(ModelSourceTest, PlainUrlUsesTheSourcesSha256Sums) {
  ServerThread hub(model_.path(), manifest_, "", {}, "acme/tiny");
  auto ref = ParseModelRef(hub.url() + "/acme/tiny/resolve/main/");
  ASSERT_TRUE(ref.ok());
  auto mirror = MirrorModel(posix_, ref.value(), Options(""));
  ASSERT_TRUE(mirror.ok()) << mirror.status().message();
  ExpectSameFiles(mirror->dir);
  EXPECT_EQ(mirror->files_verified, 1) << "SHA256SUMS names the weights";
}

// HF_TOKEN is the hub's: it never goes to a plain URL's server, nor in clear
// across a network.
TEST(ModelTokenTest, GoesOnlyOverHttpsOrToThisMachine) {
  EXPECT_TRUE(TokenMayGoTo("https://huggingface.co"));
  EXPECT_TRUE(TokenMayGoTo("https://10.0.0.7:8443"));
  EXPECT_TRUE(TokenMayGoTo("http://127.0.0.1:8080"));
  EXPECT_TRUE(TokenMayGoTo("http://localhost/hub"));
  EXPECT_TRUE(TokenMayGoTo("http://[::1]:9"));
  EXPECT_FALSE(TokenMayGoTo("http://10.0.0.7:8080"));
  EXPECT_FALSE(TokenMayGoTo("http://mirror.example/hub"));
  EXPECT_FALSE(TokenMayGoTo("http://127.0.0.1.evil.example"));
  EXPECT_FALSE(TokenMayGoTo("http://127.0.0.1@evil.example"));
  EXPECT_FALSE(TokenMayGoTo("ftp://127.0.0.1"));
}

TEST_F(ModelSourceTest, ThePlainUrlServerNeverGetsTheHubToken) {
  ServerThread server(model_.path(), manifest_, "tok", {}, "acme/tiny");
  auto ref = ParseModelRef(server.url() + "/acme/tiny/resolve/main/");
  ASSERT_TRUE(ref.ok());
  MirrorOptions o = Options("");
  o.token = "tok";  // the server would take it: it is not sent, so the server refuses
  auto mirror = MirrorModel(posix_, ref.value(), o);
  ASSERT_FALSE(mirror.ok());
  EXPECT_NE(mirror.status().message().find("HTTP 401"), std::string::npos) << mirror.status().message();
}

TEST_F(ModelSourceTest, CorruptedBytesAreFetchedAgainAndNeverUsed) {
  ServerThread flaky(model_.path(), manifest_, "", ServeFaults{1, 0, 0}, "acme/tiny");
  auto mirror = MirrorModel(posix_, Hub(), Options(flaky.url()));
  ASSERT_TRUE(mirror.ok()) << mirror.status().message();
  ExpectSameFiles(mirror->dir);
  TempDir other;
  ServerThread liar(model_.path(), manifest_, "", ServeFaults{1000000, 0, 0}, "acme/tiny");
  MirrorOptions o = Options(liar.url());
  o.cache_dir = other.path();
  auto failed = MirrorModel(posix_, Hub(), o);
  ASSERT_FALSE(failed.ok());
  EXPECT_NE(failed.status().message().find("does not match the"), std::string::npos) << failed.status().message();
  for (const auto& entry : fs::recursive_directory_iterator(other.path())) {
    EXPECT_NE(entry.path().filename(), "model.safetensors") << "a file that never matched is never kept";
  }
}

TEST_F(ModelSourceTest, ServerErrorsAreRetriedAndAnInterruptedFileResumes) {
  ServerThread flaky(model_.path(), manifest_, "", ServeFaults{0, 2, 1}, "acme/tiny");
  auto mirror = MirrorModel(posix_, Hub(), Options(flaky.url()));
  ASSERT_TRUE(mirror.ok()) << mirror.status().message();
  ExpectSameFiles(mirror->dir);
  uint64_t total = 0;
  for (const auto& entry : fs::directory_iterator(mirror->dir)) total += entry.file_size();
  EXPECT_LT(mirror->fetched_bytes, total + total / 2) << "the file cut short resumed instead of starting over";
  TempDir other;
  ServerThread broken(model_.path(), manifest_, "", ServeFaults{0, 1000000, 0}, "acme/tiny");
  MirrorOptions o = Options(broken.url());
  o.cache_dir = other.path();
  auto failed = MirrorModel(posix_, Hub(), o);
  ASSERT_FALSE(failed.ok());
  EXPECT_NE(failed.status().message().find("failed 4 times; last: HTTP 500"), std::string::npos)
      << failed.status().message();
}

TEST_F(ModelSourceTest, WrongTokenUnknownRepoAndNoServerEachFailClearly) {
  ServerThread hub(model_.path(), manifest_, "right", {}, "acme/tiny");
  MirrorOptions o = Options(hub.url());
  o.token = "wrong";
  auto denied = MirrorModel(posix_, Hub(), o);
  ASSERT_FALSE(denied.ok());
  EXPECT_NE(denied.status().message().find("HTTP 401"), std::string::npos) << denied.status().message();
  o.token = "right";
  auto unknown = MirrorModel(posix_, ParseModelRef("acme/other").value(), o);
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("HTTP 404"), std::string::npos) << unknown.status().message();
  auto nowhere = MirrorModel(posix_, Hub(), Options("http://127.0.0.1:1"));
  ASSERT_FALSE(nowhere.ok());
  EXPECT_NE(nowhere.status().message().find("127.0.0.1:1"), std::string::npos) << nowhere.status().message();
}

TEST_F(ModelSourceTest, AFullDiskFailsWithItsCauseAndLeavesNothingUsable) {
  ServerThread hub(model_.path(), manifest_, "", {}, "acme/tiny");
  FaultInjectionEnv full(posix_);
  full.FailWritesAfter(64u << 10, ENOSPC);
  auto failed = MirrorModel(full, Hub(), Options(hub.url()));
  ASSERT_FALSE(failed.ok());
  EXPECT_NE(failed.status().message().find("No space left"), std::string::npos) << failed.status().message();
  for (const auto& entry : fs::recursive_directory_iterator(cache_.path())) {
    EXPECT_NE(entry.path().filename(), "model.safetensors") << "no half-written file under its real name";
  }
  full.Heal();  // space again: the mirror completes, resuming what was written
  auto mirror = MirrorModel(full, Hub(), Options(hub.url()));
  ASSERT_TRUE(mirror.ok()) << mirror.status().message();
  ExpectSameFiles(mirror->dir);
}

}  // namespace
}  // namespace strata
