#include "coordinator/text/bpe_model.h"

#include <cstdio>
#include <queue>

#include "base/escape.h"
#include "coordinator/text/utf8.h"

namespace strata::text {

Result<std::unique_ptr<BpeModel>> BpeModel::Build(std::vector<std::pair<std::string, int32_t>> vocab,
                                                  const std::vector<std::pair<std::string, std::string>>& merges,
                                                  Options options) {
  std::unique_ptr<BpeModel> m(new BpeModel());
  int32_t end = 0;
  for (const auto& [token, id] : vocab) {
    if (id < 0 || id >= kMaxId) {
      return Status::Error("token '" + EscapeText(token, 64) + "' has id " + std::to_string(id) + " (ids are 0.." +
                           std::to_string(kMaxId - 1) + ")");
    }
    end = std::max(end, id + 1);
  }
  m->tokens_.resize(static_cast<size_t>(end));
  m->present_.assign(static_cast<size_t>(end), false);
  m->ids_.reserve(vocab.size());
  for (auto& [token, id] : vocab) {
    if (m->present_[id]) return Status::Error("id " + std::to_string(id) + " is given to two tokens");
    if (!m->ids_.emplace(token, id).second) return Status::Error("token '" + EscapeText(token, 64) + "' appears twice");
    m->present_[id] = true;
    m->tokens_[id] = std::move(token);
  }
  m->merges_.reserve(merges.size());
  m->merge_order_.reserve(merges.size());
  const size_t plen = options.continuing_prefix.size();
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [a, b] = merges[rank];
    const int32_t ia = m->IdOf(a), ib = m->IdOf(b);
    const std::string joined = a + (plen > 0 && b.compare(0, plen, options.continuing_prefix) == 0 ? b.substr(plen) : b);
    const int32_t ij = m->IdOf(joined);
    if (ia < 0 || ib < 0 || ij < 0) {
      return Status::Error("merge " + std::to_string(rank) + " ('" + EscapeText(a, 64) + "' '" + EscapeText(b, 64) +
                           "') names a token the vocabulary does not have");
    }
    // A repeated pair keeps its first (lowest) rank, as the library's map does.
    if (m->merges_.emplace(Key(ia, ib), Merge{static_cast<int32_t>(rank), ij}).second) m->merge_order_.push_back(Key(ia, ib));
  }
  if (!options.unk_token.empty()) {
    m->unk_id_ = m->IdOf(options.unk_token);
    if (m->unk_id_ < 0) return Status::Error("unk_token '" + EscapeText(options.unk_token, 64) + "' is not in the vocabulary");
  }
  m->options_ = std::move(options);
  return m;
}

int32_t BpeModel::IdOf(std::string_view token) const {
  auto it = ids_.find(std::string(token));
  return it == ids_.end() ? -1 : it->second;
}

const std::string* BpeModel::TokenOf(int32_t id) const {
  return id >= 0 && id < id_end() && present_[id] ? &tokens_[id] : nullptr;
}

std::vector<std::pair<std::string, std::string>> BpeModel::Merges() const {
  std::vector<std::pair<std::string, std::string>> out;
  out.reserve(merge_order_.size());
  for (uint64_t k : merge_order_) {
    out.emplace_back(tokens_[static_cast<int32_t>(k >> 32)], tokens_[static_cast<int32_t>(k & 0xffffffffu)]);
  }
  return out;
}

// The piece's characters as the first symbols.
void BpeModel::Symbols(std::string_view piece, std::vector<int32_t>* symbols) const {
  bool last_unk = false;
  for (size_t i = 0; i < piece.size();) {
    const size_t n = CharLen(piece, i);
    std::string s(piece.substr(i, n));
    if (i > 0) s = options_.continuing_prefix + s;
    if (i + n == piece.size()) s += options_.end_suffix;
    const int32_t id = IdOf(s);
    if (id >= 0) {
      symbols->push_back(id);
      last_unk = false;
    } else {
      std::vector<int32_t> bytes;
      if (options_.byte_fallback) {
        for (size_t k = i; k < i + n; ++k) {
          char name[8];
          std::snprintf(name, sizeof name, "<0x%02X>", static_cast<unsigned>(static_cast<uint8_t>(piece[k])));
          const int32_t b = IdOf(name);
          if (b < 0) {
            bytes.clear();
            break;
          }
          bytes.push_back(b);
        }
      }
      if (!bytes.empty()) {
        symbols->insert(symbols->end(), bytes.begin(), bytes.end());
        last_unk = false;
      } else if (unk_id_ >= 0) {
        if (!(options_.fuse_unk && last_unk)) symbols->push_back(unk_id_);
        last_unk = true;
      }
    }
    i += n;
  }
}

void BpeModel::Encode(std::string_view piece, std::vector<int32_t>* out) const {
  if (piece.empty()) return;
  if (options_.ignore_merges) {
    const int32_t id = IdOf(piece);
    if (id >= 0) {
      out->push_back(id);
      return;
    }
  }
  std::vector<int32_t> sym;
  Symbols(piece, &sym);
  const int n = static_cast<int>(sym.size());
  std::vector<int> prev(n), next(n);
  for (int i = 0; i < n; ++i) {
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  struct Candidate {
    int32_t rank;
    int pos;
    int32_t id;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> queue;
  auto offer = [&](int pos) {
    if (pos < 0 || next[pos] < 0) return;
    auto it = merges_.find(Key(sym[pos], sym[next[pos]]));
    if (it != merges_.end()) queue.push({it->second.rank, pos, it->second.id});
  };
  for (int i = 0; i + 1 < n; ++i) offer(i);
  std::vector<bool> gone(n, false);
  while (!queue.empty()) {
    const Candidate c = queue.top();
    queue.pop();
    // Stale: the left symbol merged away, or the pair is no longer this merge.
    if (gone[c.pos] || next[c.pos] < 0) continue;
    auto it = merges_.find(Key(sym[c.pos], sym[next[c.pos]]));
    if (it == merges_.end() || it->second.id != c.id) continue;
    const int right = next[c.pos];
    sym[c.pos] = c.id;
    gone[right] = true;
    next[c.pos] = next[right];
    if (next[right] >= 0) prev[next[right]] = c.pos;
    offer(prev[c.pos]);
    offer(c.pos);
  }
  for (int i = 0; i < n; ++i) {
    if (!gone[i]) out->push_back(sym[i]);
  }
}

}  // namespace strata::text
