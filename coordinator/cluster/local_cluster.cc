#include "coordinator/cluster/local_cluster.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <climits>
#include <cstring>
#include <thread>

namespace strata {
namespace {

// Reads one line from fd within timeout_ms; false on EOF, error or timeout.
bool ReadLine(int fd, int timeout_ms, std::string* line) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  char c;
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    struct pollfd p = {fd, POLLIN, 0};
    const int r = ::poll(&p, 1, static_cast<int>(left.count()));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    const ssize_t n = ::read(fd, &c, 1);
    if (n <= 0) return false;
    if (c == '\n') return true;
    line->push_back(c);
  }
}

}  // namespace

std::string SiblingBinary(const std::string& name) {
  char buf[PATH_MAX];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return name;
  std::string self(buf, static_cast<size_t>(n));
  return self.substr(0, self.rfind('/') + 1) + name;
}

Result<std::unique_ptr<LocalCluster>> LocalCluster::Start(const LocalClusterOptions& options) {
  if (options.nodes < 1) return Status::Error("--local wants at least 1 node");
  if (::access(options.node_binary.c_str(), X_OK) != 0) {
    return Status::Error("cannot run the node binary " + options.node_binary + ": " + std::strerror(errno));
  }
  std::unique_ptr<LocalCluster> cluster(new LocalCluster());
  for (int i = 0; i < options.nodes; ++i) {
    int pipe_fds[2];
    if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return Status::Error(std::string("pipe: ") + std::strerror(errno));
    std::vector<std::string> args = {options.node_binary, "--listen", "127.0.0.1:0", "--name",
                                     "local-" + std::to_string(i), "--ready-fd", "3", "--log-level", options.log_level};
    if (options.threads > 0) { args.push_back("--threads"); args.push_back(std::to_string(options.threads)); }
    if (options.memory_per_node > 0) {
      args.push_back("--memory-limit");
      args.push_back(std::to_string(options.memory_per_node));
    }
    if (!options.tls_cert.empty()) {
      args.insert(args.end(), {"--tls", "--tls-cert", options.tls_cert, "--tls-key", options.tls_key, "--tls-ca",
                               options.tls_ca});
    }
    if (!options.discovery) args.push_back("--no-discovery");
    if (!options.calibrate) args.push_back("--no-calibration");
    for (const auto& dir : options.models_dirs) {
      args.push_back("--models-dir");
      args.push_back(dir);
    }
    args.insert(args.end(), options.extra_args.begin(), options.extra_args.end());
    if (static_cast<size_t>(i) < options.node_args.size()) {
      args.insert(args.end(), options.node_args[i].begin(), options.node_args[i].end());
    }
    // The secret travels in the environment, not argv: /proc/PID/cmdline is
    // world-readable, /proc/PID/environ is not.
    std::vector<std::string> env;
    for (char** e = environ; *e != nullptr; ++e) {
      if (std::strncmp(*e, "STRATA_CLUSTER_SECRET=", 22) != 0) env.push_back(*e);
    }
    if (!options.secret.empty()) env.push_back("STRATA_CLUSTER_SECRET=" + options.secret);
    std::vector<char*> envp;
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    if (pid < 0) return Status::Error(std::string("fork: ") + std::strerror(errno));
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (::getppid() != parent) ::_exit(1);  // the coordinator died before prctl
      ::dup2(pipe_fds[1], 3);                 // dup2 clears CLOEXEC on fd 3
      if (!options.log_path.empty()) {
        const int log = ::open(options.log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (log >= 0) ::dup2(log, 2);
      }
      // A node must not take the coordinator's terminal signals: Ctrl-C goes
      // to the coordinator, which then stops its nodes in order.
      ::setpgid(0, 0);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execve(options.node_binary.c_str(), argv.data(), envp.data());
      ::_exit(127);
    }
    ::close(pipe_fds[1]);
    cluster->pids_.push_back(pid);
    std::string address;
    const bool ready = ReadLine(pipe_fds[0], 60000, &address);
    ::close(pipe_fds[0]);
    if (!ready || address.empty()) {
      return Status::Error("local node " + std::to_string(i) + " (pid " + std::to_string(pid) +
                           ") did not start listening; see its log above");
    }
    cluster->addresses_.push_back(address);
  }
  return cluster;
}

LocalCluster::~LocalCluster() {
  for (pid_t pid : pids_) ::kill(pid, SIGTERM);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  for (pid_t pid : pids_) {
    while (true) {
      const pid_t r = ::waitpid(pid, nullptr, WNOHANG);
      if (r == pid || (r < 0 && errno != EINTR)) break;
      if (std::chrono::steady_clock::now() > deadline) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, nullptr, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
}

}  // namespace strata
