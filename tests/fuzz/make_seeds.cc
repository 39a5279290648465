// Writes the seed corpora of the fuzzers under tests/fuzz/corpus/: framed
// RPC conversations with a node (bootstrap, challenge, hello, Control and
// Session calls, pipelined on promised answers), encoded tensors, and small
// safetensors and GGUF files. Run by scripts/fuzz.sh --make-seeds; the output is
// committed so CI fuzzes from the same start.
#include <capnp/rpc.capnp.h>
#include <capnp/serialize.h>
#include <sys/stat.h>

#include <cstdio>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "protocol/peer_auth.h"
#include "protocol/tensor_codec.h"
#include "protocol/version.h"
#include "storage/gguf.h"
#include "storage/safetensors.h"
#include "strata.capnp.h"

namespace {

using capnp::rpc::Message;

// Appends one framed message to `out`.
void Frame(capnp::MessageBuilder& message, std::string* out) {
  auto words = capnp::messageToFlatArray(message);
  auto bytes = words.asBytes();
  out->append(reinterpret_cast<const char*>(bytes.begin()), bytes.size());
}

struct Conversation {
  std::string bytes;
  uint32_t next_question = 0;

  uint32_t Bootstrap() {
    capnp::MallocMessageBuilder m;
    auto b = m.initRoot<Message>().initBootstrap();
    b.setQuestionId(next_question);
    Frame(m, &bytes);
    return next_question++;
  }
  // A call on the promised answer of `question`, following pointer `field`
  // of its results (or the bootstrap itself when field < 0).
  template <typename Params>
  uint32_t Call(uint32_t question, int field, uint64_t interface_id, uint16_t method,
                std::function<void(typename Params::Builder)> fill) {
    capnp::MallocMessageBuilder m;
    auto call = m.initRoot<Message>().initCall();
    call.setQuestionId(next_question);
    call.setInterfaceId(interface_id);
    call.setMethodId(method);
    auto promised = call.initTarget().initPromisedAnswer();
    promised.setQuestionId(question);
    if (field >= 0) promised.initTransform(1)[0].setGetPointerField(static_cast<uint16_t>(field));
    fill(call.initParams().getContent().initAs<Params>());
    Frame(m, &bytes);
    return next_question++;
  }
  void Finish(uint32_t question) {
    capnp::MallocMessageBuilder m;
    m.initRoot<Message>().initFinish().setQuestionId(question);
    Frame(m, &bytes);
  }
};

void Write(const std::string& path, const std::string& bytes) { std::ofstream(path, std::ios::binary) << bytes; }

void RpcSeeds(const std::string& dir) {
  using namespace strata::wire;
  const uint64_t node = capnp::typeId<Node>(), control = capnp::typeId<Control>(),
                 session = capnp::typeId<Session>(), upstream = capnp::typeId<Upstream>();
  auto challenge = [](Node::ChallengeParams::Builder p) {
    p.setProtocolVersion(strata::kProtocolVersion);
    p.initClientNonce(strata::kNonceBytes);
  };
  auto hello = [](PeerRole role) {
    return [role](Node::HelloParams::Builder p) {
      p.setProtocolVersion(strata::kProtocolVersion);
      p.setPeer("fuzz");
      p.setRole(role);
    };
  };
  // 1: challenge only.  2: challenge + hello.  3: the whole coordinator path.
  {
    Conversation c;
    const uint32_t boot = c.Bootstrap();
    c.Call<Node::ChallengeParams>(boot, -1, node, 0, challenge);
    Write(dir + "/challenge", c.bytes);
    c.Call<Node::HelloParams>(boot, -1, node, 1, hello(PeerRole::COORDINATOR));
    Write(dir + "/hello", c.bytes);
  }
  for (const char* model : {"/nonexistent", "models/kjv-5m"}) {
    Conversation c;
    const uint32_t boot = c.Bootstrap();
    c.Call<Node::ChallengeParams>(boot, -1, node, 0, challenge);
    const uint32_t h = c.Call<Node::HelloParams>(boot, -1, node, 1, hello(PeerRole::COORDINATOR));
    c.Call<Control::InfoParams>(h, 1, control, 0, [](Control::InfoParams::Builder) {});
    c.Call<Control::LoadShardParams>(h, 1, control, 1, [model](Control::LoadShardParams::Builder p) {
      auto spec = p.initSpec();
      spec.setModelDir(model);
      spec.setFirstLayer(0);
      spec.setEndLayer(1);
    });
    c.Call<Control::SetNextParams>(h, 1, control, 2, [](Control::SetNextParams::Builder p) {
      p.setAddress("");
      p.setStageIndex(0);
      p.setStageCount(1);
    });
    const uint32_t open = c.Call<Control::OpenSessionParams>(h, 1, control, 3, [](Control::OpenSessionParams::Builder p) {
      p.setCapacity(8);
      p.initSampling().setTopP(1.0f);
    });
    // Session.submit (@3): without a sink it is refused after every check of the step.
    c.Call<Session::SubmitParams>(open, 0, session, 3, [](Session::SubmitParams::Builder p) {
      auto ids = p.initStep().initInput().initTokens(3);
      for (unsigned i = 0; i < 3; ++i) ids.set(i, i + 1);
    });
    c.Call<Session::CloseParams>(open, 0, session, 1, [](Session::CloseParams::Builder) {});
    c.Finish(open);
    Write(dir + (model[0] == '/' ? "/coordinator" : "/coordinator-kjv"), c.bytes);
  }
  {
    Conversation c;
    const uint32_t boot = c.Bootstrap();
    c.Call<Node::ChallengeParams>(boot, -1, node, 0, challenge);
    const uint32_t h = c.Call<Node::HelloParams>(boot, -1, node, 1, hello(PeerRole::STAGE));
    c.Call<Upstream::SubmitParams>(h, 2, upstream, 1, [](Upstream::SubmitParams::Builder p) {
      p.initTicket(strata::kTicketBytes);
      p.setHop(1);
      strata::HostTensor t;
      t.shape = {1, 8};
      t.data.assign(32, 0);
      strata::EncodeTensor(t, p.initStep().initInput().initHidden());
    });
    Write(dir + "/upstream", c.bytes);
  }
}

void TensorSeeds(const std::string& dir) {
  int n = 0;
  for (auto dtype : {strata::TensorDType::kF32, strata::TensorDType::kBF16, strata::TensorDType::kF16}) {
    for (std::vector<int64_t> shape : {std::vector<int64_t>{4}, {2, 3}, {1, 2, 2, 1}}) {
      strata::HostTensor t;
      t.dtype = dtype;
      t.shape = shape;
      t.data.assign(static_cast<size_t>(t.numel()) * strata::ElementSize(dtype), 0x3c);
      capnp::MallocMessageBuilder m;
      strata::EncodeTensor(t, m.initRoot<strata::wire::Tensor>());
      std::string bytes;
      Frame(m, &bytes);
      Write(dir + "/tensor" + std::to_string(n++), bytes);
    }
  }
}

void SafetensorsSeeds(const std::string& dir) {
  std::vector<strata::TensorToWrite> tensors = {
      {"model.embed_tokens.weight", strata::DType::kF32, {4, 2}, [](uint8_t* d) { std::fill(d, d + 32, 1); }},
      {"model.norm.weight", strata::DType::kBF16, {2}, [](uint8_t* d) { std::fill(d, d + 4, 2); }}};
  strata::PosixEnv env;
  strata::WriteSafetensors(env, dir + "/two-tensors.safetensors", tensors);
  strata::WriteSafetensors(env, dir + "/empty.safetensors", {});
}

}  // namespace

// A small GGUF model file: llama metadata, a vocabulary, and tensors of
// plain and block types.
void GgufSeeds(const std::string& dir) {
  strata::PosixEnv env;
  std::vector<std::pair<std::string, strata::GgufValue>> meta = {
      {"general.architecture", strata::GgufStr("llama")},
      {"general.alignment", strata::GgufU32(32)},
      {"llama.block_count", strata::GgufU32(1)},
      {"llama.embedding_length", strata::GgufU32(256)},
      {"llama.rope.freq_base", strata::GgufF32(10000.0f)},
      {"tokenizer.ggml.model", strata::GgufStr("llama")},
      {"tokenizer.ggml.tokens", strata::GgufStrArray({"<unk>", "<s>", "</s>", "a"})},
      {"tokenizer.ggml.scores", strata::GgufF32Array({0, 0, 0, -1})},
      {"tokenizer.ggml.token_type", strata::GgufI32Array({2, 3, 3, 1})},
      {"tokenizer.ggml.add_bos_token", strata::GgufBool(true)},
  };
  auto zeros = [](uint8_t*) {};
  std::vector<strata::GgufTensorToWrite> tensors = {
      {"token_embd.weight", strata::DType::kF16, {4, 256}, zeros},
      {"blk.0.attn_q.weight", strata::DType::kQ4_K, {2, 256}, zeros},
      {"blk.0.ffn_down.weight", strata::DType::kQ8_0, {2, 64}, zeros},
      {"output_norm.weight", strata::DType::kF32, {256}, zeros}};
  strata::WriteGguf(env, dir + "/small.gguf", meta, tensors);
  strata::WriteGguf(env, dir + "/empty.gguf", {}, {});
}

int main(int argc, char** argv) {
  const std::string root = argc > 1 ? argv[1] : "tests/fuzz/corpus";
  for (const char* sub : {"", "/stage_rpc_fuzz", "/tensor_codec_fuzz", "/safetensors_fuzz", "/gguf_fuzz"}) {
    ::mkdir((root + sub).c_str(), 0755);
  }
  RpcSeeds(root + "/stage_rpc_fuzz");
  TensorSeeds(root + "/tensor_codec_fuzz");
  SafetensorsSeeds(root + "/safetensors_fuzz");
  GgufSeeds(root + "/gguf_fuzz");
  std::printf("seeds written under %s\n", root.c_str());
  return 0;
}
