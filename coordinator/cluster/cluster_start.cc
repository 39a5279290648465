#include "coordinator/cluster/cluster_start.h"

#include <spdlog/spdlog.h>

#include "base/system_memory.h"
#include "coordinator/cluster/membership.h"
#include "storage/model_manifest.h"

namespace strata {

Result<CommandModel> OpenCommandModel(const std::string& model, const ModelSourceFlags& source, const std::string& dtype) {
  CommandModel m;
  if (!ParseTensorDType(dtype, &m.dtype) || m.dtype == TensorDType::kF16) {
    return Status::Error("--dtype must be f32 or bf16, got '" + dtype + "'");
  }
  if (model.empty()) return Status::Error("--model DIR is required");
  auto path = ResolveModel(model, source);
  if (!path.ok()) return path.status();
  m.path = path.value();
  auto ckpt = Checkpoint::Open(m.path);
  if (!ckpt.ok()) return ckpt.status();
  m.checkpoint = std::move(ckpt.value());
  return m;
}

Timeouts TimeoutsOf(const ClusterFlags& flags) {
  Timeouts t;
  t.connect_ms = static_cast<uint32_t>(flags.connect_timeout_ms);
  t.call_ms = static_cast<uint32_t>(flags.step_timeout_ms);
  return t;
}

ModelCosts CostsOf(const Checkpoint& ckpt, TensorDType dtype, uint64_t kv_tokens) {
  ModelCosts costs;
  const ModelConfig& c = ckpt.config();
  const uint64_t size = ElementSize(dtype);
  const uint64_t kv_per_layer = kv_tokens * 2 * static_cast<uint64_t>(c.num_kv_heads * c.head_dim) * size;
  for (int64_t l = 0; l < c.num_layers; ++l) {
    costs.layer_bytes.push_back(ckpt.LayerBytes(l, size) + kv_per_layer);
    costs.layer_read_bytes.push_back(ckpt.LayerBytes(l, size));
  }
  costs.embed_bytes = ckpt.EmbedBytes(size);
  costs.head_bytes = ckpt.HeadBytes(size);
  return costs;
}

// `models_dir` ("": none) is where this command's own local nodes may read
// the model by path; elsewhere models reach nodes through their caches.
Result<Cluster> StartCluster(const ClusterFlags& flags, const Credentials& credentials, const std::string& models_dir) {
  Cluster c;
  if (!flags.kv_dtype.empty() && flags.local == 0) {
    return Status::Error("--kv-dtype sets the KV of --local nodes; other nodes take it as their own flag");
  }
  if (!flags.kv_dtype.empty() && flags.kv_dtype != "compute" && flags.kv_dtype != "int8") {
    return Status::Error("--kv-dtype must be compute or int8, got '" + flags.kv_dtype + "'");
  }
  if (flags.local > 0) {
    LocalClusterOptions options;
    options.secret = credentials.secret.Hex();
    if (!credentials.coordinator_pub.empty()) options.extra_args = {"--coordinator-pub", credentials.coordinator_pub};
    if (credentials.tls) {
      options.tls_cert = credentials.tls_files.cert;
      options.tls_key = credentials.tls_files.key;
      options.tls_ca = credentials.tls_files.ca;
    }
    options.nodes = static_cast<int>(flags.local);
    options.node_binary = flags.node_binary.empty() ? SiblingBinary("strata-node") : flags.node_binary;
    options.threads = static_cast<int>(flags.threads);
    options.memory_per_node = AvailableMemoryBytes() / static_cast<uint64_t>(flags.local);
    // A GGUF file's nodes may read the directory it is in.
    if (!models_dir.empty()) options.models_dirs.push_back(ManifestFilesDir(models_dir));
    if (!flags.kv_dtype.empty()) options.extra_args.insert(options.extra_args.end(), {"--kv-dtype", flags.kv_dtype});
    auto started = LocalCluster::Start(options);
    if (!started.ok()) return started.status();
    c.local = std::move(started.value());
    c.addresses = c.local->addresses();
    return c;
  }
  auto members = ResolveMembers(flags, credentials.secret);
  if (!members.ok()) return members.status();
  spdlog::info("{} nodes from {}", members->addresses.size(), members->source);
  c.addresses = members->addresses;
  c.discovered = UsesDiscovery(flags);
  return c;
}

}  // namespace strata
