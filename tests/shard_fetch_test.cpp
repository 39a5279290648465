// Shard fetches: a node's tensors come from the coordinator's model server
// (real HTTP over loopback) into its cache, each checked against its SHA-256.
// Bytes corrupted in transit are fetched again and never loaded; 500s and
// connections closed early are retried with backoff, then fail clearly; a
// wrong token gets nothing; a full disk fails with its cause and leaves no
// usable half-file; an interrupted fetch resumes; a warm cache transfers
// nothing; the cache keeps to its limit. And end to end: three real nodes
// refuse to open a model by a path outside their --models-dir, fetch their
// shards instead, and generate the tokens nodes generate from the files.
#include "storage/shard_fetch.h"

#include <gtest/gtest.h>
#include <kj/async-io.h>
#include <kj/thread.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <ctime>
#include <fstream>
#include <filesystem>
#include <future>
#include <nlohmann/json.hpp>

#include "coordinator/cluster/local_cluster.h"
#include "coordinator/cluster/model_server.h"
#include "storage/checkpoint.h"
#include "storage/fault_env.h"
#include "storage/gguf_quantize.h"
#include "tests/model_server_thread.h"
#include "tests/raw_peer.h"
#include "tests/test_util.h"

namespace strata {
namespace {

using testing::TempDir;
using testing::ServerThread;

PosixEnv posix_;


class ShardFetchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    TestModelSpec spec;
    spec.layers = 4;
    testing::MakeModel(model_.path(), spec);
    auto manifest = BuildManifest(model_.path());
    ASSERT_TRUE(manifest.ok()) << manifest.status().message();
    manifest_ = manifest.value();
  }
  FetchOptions Options(const std::string& url) {
    FetchOptions o;
    o.base_url = url;
    o.cache_dir = cache_.path();
    o.chunk_bytes = 64u << 10;  // many ranges per tensor
    o.backoff_ms = 10;
    return o;
  }
  // The shard loads, and holds exactly the source's bytes for its tensors.
  void ExpectShardMatchesSource(const std::string& dir, int64_t first, int64_t end) {
    auto shard = Checkpoint::Open(dir);
    ASSERT_TRUE(shard.ok()) << shard.status().message();
    auto source = Checkpoint::Open(model_.path());
    for (const ManifestTensor* t : manifest_.ForLayers(first, end, 4)) {
      auto a = shard.value()->Find(t->name);
      auto b = source.value()->Find(t->name);
      ASSERT_TRUE(a.ok() && b.ok()) << t->name;
      ASSERT_EQ(a.value()->nbytes, b.value()->nbytes);
      EXPECT_EQ(std::memcmp(a.value()->data, b.value()->data, a.value()->nbytes), 0) << t->name;
    }
  }
  TempDir model_, cache_;
  ModelManifest manifest_;
};

TEST_F(ShardFetchTest, FetchesOnlyItsTensorsVerifiedAndAWarmCacheTransfersNothing) {
  ServerThread server(model_.path(), manifest_, "", {});
  auto first = FetchShard(posix_, Options(server.url()), manifest_.id, 1, 3);
  ASSERT_TRUE(first.ok()) << first.status().message();
  ExpectShardMatchesSource(first->dir, 1, 3);
  uint64_t want = 0;
  for (const ManifestTensor* t : manifest_.ForLayers(1, 3, 4)) want += t->end - t->begin;
  EXPECT_EQ(first->fetched_bytes, want) << "only the stage's own tensors";
  auto again = FetchShard(posix_, Options(server.url()), manifest_.id, 1, 3);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->fetched_bytes, 0u);
}

// A cached shard that no longer agrees with its `complete` mark (a byte
// changed on disk, the file rewritten) is verified again before it is used:
// every tensor re-hashed, only the one that does not match fetched again.
TEST_F(ShardFetchTest, AShardChangedOnDiskIsVerifiedAgain) {
  ServerThread server(model_.path(), manifest_, "", {});
  auto first = FetchShard(posix_, Options(server.url()), manifest_.id, 1, 3);
  ASSERT_TRUE(first.ok()) << first.status().message();
  std::string shard_file;
  for (const auto& entry : std::filesystem::directory_iterator(first->dir)) {
    if (entry.path().extension() == ".safetensors") shard_file = entry.path();
  }
  ASSERT_FALSE(shard_file.empty());
  const auto size = std::filesystem::file_size(shard_file);
  {
    std::fstream f(shard_file, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(size - 10));
    f.put('\x5a');
  }
  EXPECT_EQ(CachedShard(cache_.path(), manifest_.id, 1, 3), "") << "the mark no longer agrees";
  auto again = FetchShard(posix_, Options(server.url()), manifest_.id, 1, 3);
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_GT(again->fetched_bytes, 0u);
  EXPECT_LT(again->fetched_bytes, first->fetched_bytes) << "only the changed tensor came again";
  ExpectShardMatchesSource(again->dir, 1, 3);
  EXPECT_NE(CachedShard(cache_.path(), manifest_.id, 1, 3), "");
}

// A GGUF model is distributed as a safetensors one is: the manifest lists
// its tensors under Hugging Face names with their block types and byte
// ranges in the one file; a stage fetches only its own ranges, verified,
// into a shard (config.json + model.gguf) that loads to exactly the source
// file's bytes, and a warm cache transfers nothing.
TEST_F(ShardFetchTest, AGgufModelFetchesOnlyItsStagesBlocks) {
  TempDir dir;
  const std::string gguf = dir / "m.gguf";
  {
    auto ckpt = Checkpoint::Open(model_.path());
    ASSERT_TRUE(ckpt.ok());
    GgufQuantizeOptions q;
    q.type = "q4_k_m";
    q.out = gguf;
    ASSERT_TRUE(WriteQuantizedGguf(posix_, *ckpt.value(), q).ok());
  }
  auto manifest = BuildManifest(gguf);
  ASSERT_TRUE(manifest.ok()) << manifest.status().message();
  EXPECT_EQ(manifest->container, ModelManifest::Container::kGguf);
  EXPECT_EQ(manifest->files, std::vector<std::string>{"m.gguf"});
  bool blocks = false;
  for (const auto& t : manifest->tensors) blocks = blocks || IsBlockDType(t.dtype);
  EXPECT_TRUE(blocks) << "a q4_k_m model lists its block types";
  auto reparsed = ModelManifest::FromJson(manifest->ToJson());
  ASSERT_TRUE(reparsed.ok()) << reparsed.status().message();
  EXPECT_EQ(reparsed->id, manifest->id);
  EXPECT_EQ(reparsed->container, ModelManifest::Container::kGguf);
  EXPECT_NE(manifest->id, manifest_.id);
  // A manifest that changes the container is not the same model: refused.
  auto json = nlohmann::json::parse(manifest->ToJson());
  json["container"] = "tarball";
  EXPECT_FALSE(ModelManifest::FromJson(json.dump()).ok());
  json.erase("container");  // read as safetensors: Q4_K is no safetensors dtype
  EXPECT_FALSE(ModelManifest::FromJson(json.dump()).ok());

  EXPECT_EQ(ManifestFilesDir(gguf), dir.path());
  ServerThread server(ManifestFilesDir(gguf), manifest.value(), "", {});
  auto fetched = FetchShard(posix_, Options(server.url()), manifest->id, 1, 3);
  ASSERT_TRUE(fetched.ok()) << fetched.status().message();
  EXPECT_TRUE(std::filesystem::exists(fetched->dir + "/model.gguf"));
  EXPECT_FALSE(std::filesystem::exists(fetched->dir + "/model.safetensors"));
  uint64_t want = 0;
  const auto stage = manifest->ForLayers(1, 3, 4);
  for (const ManifestTensor* t : stage) want += t->end - t->begin;
  EXPECT_EQ(fetched->fetched_bytes, want) << "only the stage's own tensors";
  auto shard = Checkpoint::Open(fetched->dir);
  ASSERT_TRUE(shard.ok()) << shard.status().message();
  auto source = Checkpoint::Open(gguf);
  ASSERT_TRUE(source.ok());
  EXPECT_EQ(shard.value()->config().num_layers, source.value()->config().num_layers);
  EXPECT_EQ(shard.value()->config().model_type, "llama");
  for (const ManifestTensor* t : stage) {
    auto a = shard.value()->Find(t->name);
    auto b = source.value()->Find(t->name);
    ASSERT_TRUE(a.ok() && b.ok()) << t->name;
    EXPECT_EQ(a.value()->dtype, b.value()->dtype) << t->name;
    EXPECT_EQ(a.value()->shape, b.value()->shape) << t->name;
    EXPECT_EQ(a.value()->interleaved_rope_heads, b.value()->interleaved_rope_heads) << t->name;
    ASSERT_EQ(a.value()->nbytes, b.value()->nbytes);
    EXPECT_EQ(std::memcmp(a.value()->data, b.value()->data, a.value()->nbytes), 0) << t->name;
  }
  EXPECT_FALSE(shard.value()->Find(LayerTensorName(0, "self_attn.q_proj.weight")).ok()) << "not this stage's";
  auto again = FetchShard(posix_, Options(server.url()), manifest->id, 1, 3);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->fetched_bytes, 0u);
}

// The coordinator hashes an unchanged model once: the cached manifest comes
// back without reading the weights (a change that keeps size and mtime goes
// unseen, as with make), and any change of size or mtime hashes again.
TEST_F(ShardFetchTest, ManifestIsCachedUntilTheModelChanges) {
  TempDir cache;
  auto first = BuildManifestCached(model_.path(), cache.path());
  ASSERT_TRUE(first.ok()) << first.status().message();
  EXPECT_EQ(first->id, manifest_.id);
  const std::string weights = model_.path() + "/model.safetensors";
  struct stat before {};
  ASSERT_EQ(::stat(weights.c_str(), &before), 0);
  const ManifestTensor& t = manifest_.tensors.front();
  {
    std::fstream f(weights, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(t.begin));
    f.put('\x7f');
  }
  const timespec times[2] = {before.st_atim, before.st_mtim};
  ASSERT_EQ(::utimensat(AT_FDCWD, weights.c_str(), times, 0), 0);
  auto cached = BuildManifestCached(model_.path(), cache.path());
  ASSERT_TRUE(cached.ok());
  EXPECT_EQ(cached->id, manifest_.id) << "not hashed again";
  ::utimensat(AT_FDCWD, weights.c_str(), nullptr, 0);  // now it has changed
  auto rebuilt = BuildManifestCached(model_.path(), cache.path());
  ASSERT_TRUE(rebuilt.ok());
  EXPECT_NE(rebuilt->id, manifest_.id);
  // A cache file that is garbage is rebuilt, not believed.
  for (const auto& entry : std::filesystem::directory_iterator(cache.path() + "/manifests")) {
    std::ofstream(entry.path()) << "garbage\n{";
  }
  auto again = BuildManifestCached(model_.path(), cache.path());
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_EQ(again->id, rebuilt->id);
}

TEST_F(ShardFetchTest, CorruptedBytesAreFetchedAgainAndNeverLoaded) {
  ServerThread server(model_.path(), manifest_, "", ServeFaults{3, 0, 0});
  auto fetched = FetchShard(posix_, Options(server.url()), manifest_.id, 0, 4);
  ASSERT_TRUE(fetched.ok()) << fetched.status().message();
  EXPECT_GE(fetched->refetched_tensors, 1u);
  ExpectShardMatchesSource(fetched->dir, 0, 4);
  // Whole tensors per request, hashed as they arrive: the same defence.
  {
    TempDir whole_cache;
    ServerThread corrupting(model_.path(), manifest_, "", ServeFaults{3, 0, 0});
    FetchOptions o = Options(corrupting.url());
    o.cache_dir = whole_cache.path();
    o.chunk_bytes = 256u << 20;
    auto whole = FetchShard(posix_, o, manifest_.id, 0, 4);
    ASSERT_TRUE(whole.ok()) << whole.status().message();
    EXPECT_EQ(whole->refetched_tensors, 3u) << "each corrupted response costs its tensor one refetch";
    ExpectShardMatchesSource(whole->dir, 0, 4);
  }
  // A source that always corrupts: a clear error, and no shard to load.
  TempDir other;
  ServerThread liar(model_.path(), manifest_, "", ServeFaults{1000000, 0, 0});
  FetchOptions o = Options(liar.url());
  o.cache_dir = other.path();
  auto failed = FetchShard(posix_, o, manifest_.id, 0, 4);
  ASSERT_FALSE(failed.ok());
  EXPECT_NE(failed.status().message().find("does not match its SHA-256"), std::string::npos) << failed.status().message();
  EXPECT_EQ(CachedShard(other.path(), manifest_.id, 0, 4), "");
}

TEST_F(ShardFetchTest, ServerErrorsAndEarlyClosesAreRetriedThenReported) {
  ServerThread flaky(model_.path(), manifest_, "", ServeFaults{0, 2, 2});
  auto fetched = FetchShard(posix_, Options(flaky.url()), manifest_.id, 0, 2);
  ASSERT_TRUE(fetched.ok()) << fetched.status().message();
  ExpectShardMatchesSource(fetched->dir, 0, 2);
  TempDir other;
  ServerThread broken(model_.path(), manifest_, "", ServeFaults{0, 1000000, 0});
  FetchOptions o = Options(broken.url());
  o.cache_dir = other.path();
  auto failed = FetchShard(posix_, o, manifest_.id, 0, 2);
  ASSERT_FALSE(failed.ok());
  EXPECT_NE(failed.status().message().find("failed 4 times; last: HTTP 500"), std::string::npos) << failed.status().message();
  // Nothing listens: the manifest cannot be had, and the error says where.
  FetchOptions nowhere = Options("http://127.0.0.1:1");
  nowhere.cache_dir = other.path();
  auto unreachable = FetchShard(posix_, nowhere, manifest_.id, 0, 2);
  ASSERT_FALSE(unreachable.ok());
  EXPECT_NE(unreachable.status().message().find("cannot get the model manifest from http://127.0.0.1:1"),
            std::string::npos)
      << unreachable.status().message();
}

// A cluster's model server lets in a ModelToken: one for this model, not
// expired. One for another model, a lapsed one, or a made-up one gets
// nothing; the manifest is public, so a coordinator can name the model.
TEST_F(ShardFetchTest, AModelTokenOpensOneModelUntilItLapses) {
  const ClusterSecret secret(Bytes(32, 5));
  ServerThread server(model_.path(), manifest_, "", {}, "", secret);
  const int64_t now = static_cast<int64_t>(std::time(nullptr));
  FetchOptions o = Options(server.url());
  EXPECT_TRUE(GetRemoteManifest(o).ok()) << "the manifest needs no token";
  for (const std::string& token : {std::string(), ModelToken(secret, std::string(64, 'b'), now + 600),
                                   ModelToken(secret, manifest_.id, now - 1),
                                   ModelToken(ClusterSecret(Bytes(32, 6)), manifest_.id, now + 600),
                                   std::string(80, 'f')}) {
    o.token = token;
    auto refused = FetchShard(posix_, o, manifest_.id, 0, 2);
    ASSERT_FALSE(refused.ok()) << token;
    EXPECT_NE(refused.status().message().find("HTTP 401"), std::string::npos) << refused.status().message();
  }
  o.token = ModelToken(secret, manifest_.id, now + 600);
  EXPECT_TRUE(ModelTokenValid(secret, manifest_.id, o.token, now));
  EXPECT_FALSE(ModelTokenValid(secret, manifest_.id, o.token, now + 601)) << "it lapses";
  auto fetched = FetchShard(posix_, o, manifest_.id, 0, 2);
  EXPECT_TRUE(fetched.ok()) << fetched.status().message();
}

TEST_F(ShardFetchTest, AWrongTokenGetsNothing) {
  ServerThread server(model_.path(), manifest_, "abcd", {});
  FetchOptions o = Options(server.url());
  o.token = "dcba";
  auto failed = FetchShard(posix_, o, manifest_.id, 0, 2);
  ASSERT_FALSE(failed.ok());
  EXPECT_NE(failed.status().message().find("HTTP 401"), std::string::npos) << failed.status().message();
  o.token = "abcd";
  EXPECT_TRUE(FetchShard(posix_, o, manifest_.id, 0, 2).ok());
  // A server of another model is not taken for this one.
  auto wrong = FetchShard(posix_, o, std::string(64, 'a'), 0, 2);
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(wrong.status().message().find("not aaaaaaaaaaaa"), std::string::npos) << wrong.status().message();
}

TEST_F(ShardFetchTest, AFullDiskFailsClearlyAndAnInterruptedFetchResumes) {
  ServerThread server(model_.path(), manifest_, "", {});
  FaultInjectionEnv faults(posix_);
  uint64_t total = 0;
  for (const ManifestTensor* t : manifest_.ForLayers(0, 4, 4)) total += t->end - t->begin;
  // A disk that cannot hold the shard at all: refused before any transfer.
  faults.FailWritesAfter(total / 2, ENOSPC);
  auto small = FetchShard(faults, Options(server.url()), manifest_.id, 0, 4);
  ASSERT_FALSE(small.ok());
  EXPECT_NE(small.status().message().find("cache cannot hold the shard"), std::string::npos) << small.status().message();
  // A disk that fills half-way through the transfer (the reservation and
  // the header count against it too).
  faults.FailWritesAfter(total + 16384 + total / 2, ENOSPC);
  auto failed = FetchShard(faults, Options(server.url()), manifest_.id, 0, 4);
  ASSERT_FALSE(failed.ok());
  EXPECT_NE(failed.status().message().find("No space left on device"), std::string::npos) << failed.status().message();
  EXPECT_EQ(CachedShard(cache_.path(), manifest_.id, 0, 4), "") << "a half-written shard is never used";
  faults.Heal();
  auto resumed = FetchShard(faults, Options(server.url()), manifest_.id, 0, 4);
  ASSERT_TRUE(resumed.ok()) << resumed.status().message();
  EXPECT_LT(resumed->fetched_bytes, total) << "tensors verified before the disk filled are kept";
  ExpectShardMatchesSource(resumed->dir, 0, 4);
}

TEST_F(ShardFetchTest, TheCacheKeepsToItsLimitEvictingWholeModels) {
  TempDir second;
  TestModelSpec spec;
  spec.layers = 4;
  spec.seed = 2;
  testing::MakeModel(second.path(), spec);
  auto other = BuildManifest(second.path()).value();
  ServerThread a(model_.path(), manifest_, "", {}), b(second.path(), other, "", {});
  FetchOptions o = Options(a.url());
  uint64_t model_bytes = 0;
  for (const ManifestTensor* t : manifest_.ForLayers(0, 4, 4)) model_bytes += t->end - t->begin;
  o.cache_limit = model_bytes * 3 / 2;  // room for one model, not two
  // What else shares the directory (the coordinator's mirrors, by default) is not the node's to evict.
  std::filesystem::create_directories(cache_.path() + "/manifests");
  std::ofstream(cache_.path() + "/manifests/kept") << std::string(model_bytes, 'x');
  ASSERT_TRUE(FetchShard(posix_, o, manifest_.id, 0, 4).ok());
  o.base_url = b.url();
  ASSERT_TRUE(FetchShard(posix_, o, other.id, 0, 4).ok());
  EXPECT_EQ(CachedShard(cache_.path(), manifest_.id, 0, 4), "") << "the least recently used model went";
  EXPECT_NE(CachedShard(cache_.path(), other.id, 0, 4), "");
  EXPECT_TRUE(std::filesystem::exists(cache_.path() + "/manifests/kept")) << "the node evicted what is not its own";
  o.cache_limit = model_bytes / 2;  // not even one
  TempDir empty;
  o.cache_dir = empty.path();
  auto refused = FetchShard(posix_, o, other.id, 0, 4);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("of its limit"), std::string::npos) << refused.status().message();
}

// End to end: real nodes fetch from `strata generate`, by themselves where they
// cannot read the model by path, and with --distribute.
TEST_F(ShardFetchTest, NodesFetchTheirShardsAndGenerateAsFromTheFiles) {
  TempDir caches, allowed;
  LocalClusterOptions o;
  o.nodes = 3;
  o.node_binary = testing::BinDir() + "/strata-node";
  o.threads = 1;
  o.models_dirs = {allowed.path()};  // the model is not under it: the nodes cannot open it by path
  for (int i = 0; i < 3; ++i) o.node_args.push_back({"--cache-dir", caches / std::to_string(i)});
  auto cluster = LocalCluster::Start(o);
  ASSERT_TRUE(cluster.ok()) << cluster.status().message();
  std::string addresses;
  for (const auto& a : cluster.value()->addresses()) addresses += (addresses.empty() ? "" : ",") + a;
  auto run = [&](const std::vector<std::string>& how) {
    std::vector<std::string> argv = {testing::BinDir() + "/strata", "generate", "--model", model_.path(), "--prompt",
                                     "hello", "--max-tokens", "6", "--json", "--connect-timeout-ms", "30000"};
    argv.insert(argv.end(), how.begin(), how.end());
    return testing::RunProcess(argv, 120);
  };
  // The model is not under the nodes' --models-dir: they cannot open it by
  // path, so generate serves it and they fetch it, verified, as with --distribute.
  auto fetched = run({"--nodes", addresses});
  ASSERT_EQ(fetched.exit_code, 0) << fetched.err;
  EXPECT_NE(fetched.err.find("by path; distributing the model to the nodes"), std::string::npos) << fetched.err;
  auto out = nlohmann::json::parse(fetched.out);
  EXPECT_GT(out["model_bytes_served"].get<uint64_t>(), 0u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(std::filesystem::exists(caches / (std::to_string(i) + "/" + manifest_.id + "/last-used"))) << i;
  }
  // Asked for, the same; the shards are in the caches now, so nothing is sent again.
  auto asked = run({"--nodes", addresses, "--distribute"});
  ASSERT_EQ(asked.exit_code, 0) << asked.err;
  EXPECT_EQ(asked.err.find("distributing the model"), std::string::npos) << asked.err;
  EXPECT_EQ(nlohmann::json::parse(asked.out)["tokens"], out["tokens"]);
  EXPECT_EQ(nlohmann::json::parse(asked.out)["model_bytes_served"].get<uint64_t>(), 0u);
  auto from_files = run({"--local", "3", "--threads", "1"});
  ASSERT_EQ(from_files.exit_code, 0) << from_files.err;
  EXPECT_EQ(out["tokens"], nlohmann::json::parse(from_files.out)["tokens"]);
}

}  // namespace
}  // namespace strata

namespace strata {
namespace {

// A node asked to load from a model source that accepts and then says
// nothing kept neither its shard (dropped at once) nor its loads (the next
// one waited behind the silent fetch). Now the held shard serves while the
// fetch waits, and a later load replaces the fetch at once.
TEST_F(ShardFetchTest, ASilentSourceNeitherDropsTheShardNorHoldsTheNextLoad) {
  const int silent = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in at = {};
  at.sin_family = AF_INET;
  at.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(silent, reinterpret_cast<sockaddr*>(&at), sizeof at), 0);
  ASSERT_EQ(::listen(silent, 16), 0);  // connections wait in the backlog, never answered
  socklen_t len = sizeof at;
  ::getsockname(silent, reinterpret_cast<sockaddr*>(&at), &len);
  const std::string source = "http://127.0.0.1:" + std::to_string(ntohs(at.sin_port));
  TempDir cache;
  LocalClusterOptions o;
  o.nodes = 1;
  o.node_binary = testing::BinDir() + "/strata-node";
  o.models_dirs = {testing::TempRoot()};
  o.threads = 1;
  o.extra_args = {"--cache-dir", cache.path()};
  auto cluster = LocalCluster::Start(o);
  ASSERT_TRUE(cluster.ok()) << cluster.status().message();
  auto io = kj::setupAsyncIo();
  auto link = testing::Connect(io, cluster.value()->addresses()[0], "");
  testing::Load(io, *link, model_.path(), 0, 4);
  testing::SetNext(io, *link, "", 0, 1);
  testing::Opened s = testing::Open(io, *link, 64);
  const uint32_t before = testing::SubmitTokens(io, s.session, 0, {1, 2, 3});
  auto hanging = link->control.loadShardRequest();
  auto spec = hanging.initSpec();
  spec.initSource().setUrl(source);
  spec.getSource().setModelId(manifest_.id);
  spec.setFirstLayer(0);
  spec.setEndLayer(2);
  auto fetch = hanging.send();
  // The fetch waits on the silent source; the shard held serves meanwhile.
  EXPECT_EQ(testing::SubmitTokens(io, s.session, 3, {4}), testing::SubmitTokens(io, s.session, 3, {4}));
  EXPECT_LT(before, static_cast<uint32_t>(TestModelSpec().vocab));
  const auto t0 = std::chrono::steady_clock::now();
  testing::Load(io, *link, model_.path(), 0, 2);  // the later load replaces the silent fetch
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(20)) << "it did not wait out the fetch";
  const std::string error = testing::ErrorOf([&]() { fetch.wait(io.waitScope); });
  EXPECT_NE(error.find("was replaced by a later load"), std::string::npos) << error;
  ::close(silent);
}

}  // namespace
}  // namespace strata

namespace strata {
namespace {

// On a --tls cluster the shards travel over https too: the coordinator's
// model server speaks the cluster's TLS, members only, and the nodes check
// it against the cluster CA and show their own certificates.
TEST_F(ShardFetchTest, OnATlsClusterShardsComeOverHttps) {
  TempDir keys, caches, allowed, logs;
  auto made = testing::RunProcess(
      {testing::BinDir() + "/strata", "make-secret", "--out", keys / "secret", "--tls", keys / "tls"});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  LocalClusterOptions o;
  o.nodes = 2;
  o.node_binary = testing::BinDir() + "/strata-node";
  o.threads = 1;
  o.secret = testing::ReadFile(keys / "secret").substr(0, 64);
  o.tls_cert = keys / "tls/cert.pem";
  o.tls_key = keys / "tls/key.pem";
  o.tls_ca = keys / "tls/ca.pem";
  o.models_dirs = {allowed.path()};  // not where the model is: they fetch it
  o.log_level = "info";
  o.log_path = logs / "nodes.log";
  for (int i = 0; i < 2; ++i) o.node_args.push_back({"--cache-dir", caches / std::to_string(i)});
  auto cluster = LocalCluster::Start(o);
  ASSERT_TRUE(cluster.ok()) << cluster.status().message();
  const auto& a = cluster.value()->addresses();
  auto r = testing::RunProcess({testing::BinDir() + "/strata", "generate", "--model", model_.path(), "--prompt", "hello",
                                "--max-tokens", "4", "--nodes", a[0] + "," + a[1], "--cluster-secret-file",
                                keys / "secret", "--tls-dir", keys / "tls", "--distribute"},
                               120);
  ASSERT_EQ(r.exit_code, 0) << r.err << testing::ReadFile(logs / "nodes.log");
  const std::string log = testing::ReadFile(logs / "nodes.log");
  EXPECT_NE(log.find("fetched from https://"), std::string::npos) << log;
  EXPECT_EQ(log.find("fetched from http://"), std::string::npos) << log;
}

}  // namespace
}  // namespace strata
