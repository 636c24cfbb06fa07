// The summary a user reads after `rtnq quantize`: per module kind and per layer, what precision each
// got, how much error RTN introduced, and where the bytes went. Same facts as JSON for --report.
#include <cmath>
#include <map>
#include <set>

#include <fmt/format.h>

#include "core/progress.h"
#include "quant/quantize-pipeline.h"

namespace rtnq {

namespace {

std::string spec_label(const QuantSpec& q) {
  if (q.precision == Precision::kKeep) return "keep";
  return fmt::format("{}/{}", precision_name(q.precision), q.group_size == kPerChannel ? std::string("ch") : std::to_string(q.group_size));
}

// Error statistics are combined weighted by weight count: sqrt(mean of squared relative errors),
// which equals the relative RMS error of the concatenated matrices when their norms are alike.
struct Agg {
  std::set<std::string> labels;
  int64_t weights = 0;
  uint64_t bytes_in = 0, bytes_out = 0;
  double sq_err_w = 0;  // sum of rel_rms^2 * weights over quantized modules
  int64_t q_weights = 0;
  double max_rel = 0;
  void add(const ModuleReport& m) {
    labels.insert(spec_label(m.spec));
    weights += m.weights;
    bytes_in += m.bytes_in;
    bytes_out += m.bytes_out;
    if (m.spec.precision != Precision::kKeep) {
      sq_err_w += m.rel_rms_error * m.rel_rms_error * double(m.weights);
      q_weights += m.weights;
      max_rel = std::max(max_rel, m.rel_rms_error);
    }
  }
  std::string label() const {
    std::string s;
    for (const auto& l : labels) s += (s.empty() ? "" : ",") + l;
    return s;
  }
  std::string err() const { return q_weights ? fmt::format("{:.4f}", std::sqrt(sq_err_w / double(q_weights))) : "-"; }
};

std::string layer_ranges(const std::vector<int64_t>& ls) {
  std::string s;
  for (size_t i = 0; i < ls.size();) {
    size_t j = i;
    while (j + 1 < ls.size() && ls[j + 1] == ls[j] + 1) ++j;
    s += (s.empty() ? "" : ",") + (i == j ? std::to_string(ls[i]) : fmt::format("{}-{}", ls[i], ls[j]));
    i = j + 1;
  }
  return s;
}

}  // namespace

std::string format_quantize_summary(const QuantizeReport& r) {
  std::string out;
  static const char* kKinds[] = {"q", "k", "v", "o", "gate", "up", "down", "lm_head"};
  std::map<std::string, Agg> by_kind;
  std::map<int64_t, Agg> by_layer;
  for (const auto& m : r.modules) {
    by_kind[m.module].add(m);
    if (m.layer >= 0) by_layer[m.layer].add(m);
  }
  out += fmt::format("{:<8} {:<18} {:>12} {:>12} {:>12} {:>10}\n", "module", "precision", "rel RMS err", "worst module",
                     "bytes in", "bytes out");
  for (const char* k : kKinds) {
    auto it = by_kind.find(k);
    if (it == by_kind.end()) continue;
    const Agg& a = it->second;
    out += fmt::format("{:<8} {:<18} {:>12} {:>12} {:>12} {:>10}\n", k, a.label(), a.err(),
                       a.q_weights ? fmt::format("{:.4f}", a.max_rel) : "-", format_bytes(a.bytes_in),
                       format_bytes(a.bytes_out));
  }
  // Per layer, with runs of layers that got identical treatment folded into one row.
  out += fmt::format("\n{:<10} {:<9}{:<9}{:<9}{:<9}{:<9}{:<9}{:<9} {:>12} {:>12} {:>10}\n", "layers", "q", "k", "v", "o",
                     "gate", "up", "down", "rel RMS err", "bytes in", "bytes out");
  std::map<int64_t, std::string> layer_sig;
  for (const auto& [l, a] : by_layer) {
    std::string sig;
    for (int mi = 0; mi < 7; ++mi)
      for (const auto& m : r.modules)
        if (m.layer == l && m.module == kKinds[mi]) sig += fmt::format("{:<9}", spec_label(m.spec));
    layer_sig[l] = sig;
  }
  for (auto it = by_layer.begin(); it != by_layer.end();) {
    std::vector<int64_t> run{it->first};
    Agg a = it->second;
    auto jt = std::next(it);
    // Fold consecutive layers with the same signature when there are many layers.
    while (jt != by_layer.end() && by_layer.size() > 12 && layer_sig[jt->first] == layer_sig[it->first] &&
           jt->first == run.back() + 1) {
      run.push_back(jt->first);
      for (const auto& m : r.modules)
        if (m.layer == jt->first) a.add(m);
      ++jt;
    }
    out += fmt::format("{:<10} {:<63} {:>12} {:>12} {:>10}\n", layer_ranges(run), layer_sig[it->first], a.err(),
                       format_bytes(a.bytes_in), format_bytes(a.bytes_out));
    it = jt;
  }
  uint64_t lin_in = 0, lin_out = 0;
  int64_t lin_w = 0;
  for (const auto& m : r.modules) {
    lin_in += m.bytes_in;
    lin_out += m.bytes_out;
    lin_w += m.weights;
  }
  out += fmt::format("\nlinears: {} weights, {} -> {} ({:.2f} bits/weight incl. scales)\n", lin_w, format_bytes(lin_in),
                     format_bytes(lin_out), lin_w ? double(lin_out) * 8 / double(lin_w) : 0.0);
  out += fmt::format("checkpoint: {} -> {} ({:.2f}x smaller), {} tensors in {} shard(s), {} threads, {}\n",
                     format_bytes(r.input_bytes), format_bytes(r.output_bytes),
                     r.output_bytes ? double(r.input_bytes) / double(r.output_bytes) : 0.0, r.tensors_written, r.shards,
                     r.threads, format_seconds(r.seconds));
  return out;
}

nlohmann::json QuantizeReport::to_json() const {
  nlohmann::json mods = nlohmann::json::array();
  for (const auto& m : modules) {
    mods.push_back({{"layer", m.layer},
                    {"module", m.module},
                    {"precision", std::string(precision_name(m.spec.precision))},
                    {"bits", precision_bits(m.spec.precision)},
                    {"group_size", m.spec.precision == Precision::kKeep ? nlohmann::json(nullptr) : nlohmann::json(m.spec.group_size)},
                    {"weights", m.weights},
                    {"bytes_in", m.bytes_in},
                    {"bytes_out", m.bytes_out},
                    {"rel_rms_error", m.rel_rms_error},
                    {"max_abs_error", m.max_abs_error}});
  }
  return {{"source", source.string()},
          {"source_format", source_format},
          {"output", output.string()},
          {"tensors_written", tensors_written},
          {"shards", shards},
          {"input_bytes", input_bytes},
          {"output_bytes", output_bytes},
          {"seconds", seconds},
          {"threads", threads},
          {"modules", mods}};
}

}  // namespace rtnq
