#include "quant/quantize-pipeline.h"

#include <chrono>
#include <map>
#include <optional>

#include <fmt/format.h>

#include "core/atomic-output.h"
#include "core/progress.h"
#include "core/thread-pool.h"
#include "io/safetensors-writer.h"
#include "io/tokenizer-export.h"
#include "quant/compressed-tensors.h"
#include "quant/pack.h"
#include "rtnq/quant.h"

namespace fs = std::filesystem;

namespace rtnq {

namespace {

struct ModuleRef {
  int64_t layer;
  std::string module;  // "q".."down" or "lm_head"
  QuantSpec spec;
};

// Dtype unquantized float tensors (and scales) get in the output: Hugging Face sources keep what
// they store; GGUF and llama2.c sources are written in the model's original dtype.
DType output_float_dtype(const LoadedModel& model, DType stored) {
  if (!is_float(stored)) return stored;
  return model.format == SourceFormat::kHfFolder ? stored : model.spec.torch_dtype;
}

// Bytes of a source tensor in the model's original dtype: what the equivalent Hugging Face checkpoint
// holds (a GGUF's dequantized F32 view would overstate it).
uint64_t source_bytes(const LoadedModel& model, const TensorInfo& t) {
  return uint64_t(t.numel()) * dtype_size(output_float_dtype(model, t.dtype));
}

std::map<std::string, ModuleRef> quantized_modules(const PlanTable& plan) {
  std::map<std::string, ModuleRef> out;
  for (int64_t l = 0; l < int64_t(plan.layers.size()); ++l)
    for (int mi = 0; mi < kNumModules; ++mi) {
      const QuantSpec& q = plan.at(l, Module(mi));
      if (q.precision != Precision::kKeep)
        out[module_hf_prefix(l, Module(mi)) + ".weight"] = {l, std::string(module_name(Module(mi))), q};
    }
  if (plan.lm_head.precision != Precision::kKeep) out["lm_head.weight"] = {-1, "lm_head", plan.lm_head};
  return out;
}

std::string shard_name(int i, int n) {
  if (n == 1) return "model.safetensors";
  return fmt::format("model-{:05d}-of-{:05d}.safetensors", i + 1, n);
}

nlohmann::json generation_config_for(const ModelSpec& spec) {
  nlohmann::json g = {{"_from_model_config", true}};
  if (spec.bos_token_id >= 0) g["bos_token_id"] = spec.bos_token_id;
  if (spec.eos_token_ids.size() == 1) g["eos_token_id"] = spec.eos_token_ids[0];
  else if (!spec.eos_token_ids.empty()) g["eos_token_id"] = spec.eos_token_ids;
  return g;
}

// Tokenizer and generation files: copied from Hugging Face folders, converted from GGUF / llama2.c
// vocabularies where tokenizer-export knows how (see src/io/tokenizer-export.h).
Status write_side_files(const LoadedModel& model, const fs::path& dir, std::vector<std::string>& notes) {
  if (model.format == SourceFormat::kHfFolder) {
    for (const auto& f : model.side_files) {
      std::error_code ec;
      fs::copy_file(f, dir / f.filename(), fs::copy_options::overwrite_existing, ec);
      if (ec) return io_error(f.string() + ": cannot copy into the output: " + ec.message());
    }
    return Status::ok();
  }
  RTNQ_RETURN_IF_ERROR(write_text_file(dir / "generation_config.json", generation_config_for(model.spec).dump(2) + "\n"));
  if (model.tokenizer.kind == TokenizerData::Kind::kNone) {
    notes.push_back("the source has no tokenizer; the output has none either");
    return Status::ok();
  }
  auto tj = tokenizer_json_from(model.tokenizer);
  if (!tj) {
    notes.push_back("tokenizer not converted: " + tj.status().message());
    return Status::ok();
  }
  RTNQ_RETURN_IF_ERROR(write_text_file(dir / "tokenizer.json", tj->dump(2) + "\n"));
  RTNQ_RETURN_IF_ERROR(write_text_file(dir / "tokenizer_config.json", tokenizer_config_from(model.tokenizer).dump(2) + "\n"));
  return Status::ok();
}

}  // namespace

Expected<std::vector<OutputTensor>> plan_output_tensors(const LoadedModel& model, const PlanTable& plan) {
  if (model.quantization_config)
    return invalid_argument(model.path.string() +
                            " is already quantized (config.json has a quantization_config); quantize the original model");
  if (int64_t(plan.layers.size()) != model.spec.num_layers)
    return invalid_argument(fmt::format("plan has {} layers, model has {}", plan.layers.size(), model.spec.num_layers));
  const auto qmods = quantized_modules(plan);
  if (plan.lm_head.precision != Precision::kKeep && !model.weights->contains("lm_head.weight"))
    return invalid_argument("lm_head is tied to the token embeddings in this model; it can only be kept (--lm-head keep)");
  if (plan.embed_tokens.precision != Precision::kKeep)
    return invalid_argument("embeddings are always kept at original precision");

  std::vector<OutputTensor> out;
  size_t found = 0;
  for (const TensorInfo& t : model.weights->tensors()) {
    auto it = qmods.find(t.name);
    if (it == qmods.end()) {
      OutputTensor o;
      o.info = t;
      o.info.dtype = output_float_dtype(model, t.dtype);
      o.source = t.name;
      out.push_back(std::move(o));
      continue;
    }
    ++found;
    const ModuleRef& ref = it->second;
    if (t.shape.size() != 2 || !is_float(t.dtype))
      return corrupt(fmt::format("{}: expected a 2-D float weight, found {} {}", t.name, dtype_name(t.dtype),
                                 shape_to_string(t.shape)));
    const int64_t rows = t.shape[0], cols = t.shape[1];
    const int bits = precision_bits(ref.spec.precision);
    const int64_t g = effective_group(ref.spec.group_size, cols);
    if (cols % g != 0)
      return invalid_argument(fmt::format("{}: in_features {} is not a multiple of group {}", t.name, cols, g));
    if (cols % pack_factor(bits) != 0)
      return invalid_argument(fmt::format("{}: in_features {} cannot be packed at {} bits ({} values per int32); "
                                          "keep it or use another precision",
                                          t.name, cols, bits, pack_factor(bits)));
    const std::string prefix = t.name.substr(0, t.name.size() - std::string(".weight").size());
    const DType sdt = output_float_dtype(model, t.dtype);
    auto add = [&](std::string suffix, DType dt, Shape shape, OutputTensor::Kind kind) {
      OutputTensor o;
      o.info = {prefix + suffix, dt, std::move(shape)};
      o.source = t.name;
      o.kind = kind;
      o.layer = ref.layer;
      o.module = ref.module;
      o.spec = ref.spec;
      out.push_back(std::move(o));
    };
    add(".weight_packed", DType::kI32, {rows, cols * bits / 32}, OutputTensor::Kind::kPacked);
    add(".weight_scale", sdt, {rows, cols / g}, OutputTensor::Kind::kScale);
    add(".weight_shape", DType::kI64, {2}, OutputTensor::Kind::kShape);
  }
  if (found != qmods.size())
    return corrupt(fmt::format("{}: the plan selects {} linears but the model provides {} of them", model.path.string(),
                               qmods.size(), found));
  return out;
}

Expected<QuantizeReport> quantize_model(const LoadedModel& model, const PlanTable& plan, const QuantizeOptions& opts) {
  const auto t0 = std::chrono::steady_clock::now();
  RTNQ_ASSIGN_OR_RETURN(std::vector<OutputTensor> outputs, plan_output_tensors(model, plan));

  // Shards: consecutive tensors up to max_shard_bytes each (a larger tensor gets a shard of its own).
  std::vector<std::vector<size_t>> shards(1);
  uint64_t cur = 0;
  for (size_t i = 0; i < outputs.size(); ++i) {
    const uint64_t b = outputs[i].info.nbytes();
    if (!shards.back().empty() && cur + b > opts.max_shard_bytes) {
      shards.emplace_back();
      cur = 0;
    }
    shards.back().push_back(i);
    cur += b;
  }

  RTNQ_ASSIGN_OR_RETURN(AtomicDir dir, AtomicDir::create(opts.output, opts.force));
  ThreadPool pool(opts.threads);

  QuantizeReport rep;
  rep.source = model.path;
  rep.output = opts.output;
  rep.source_format = std::string(source_format_name(model.format));
  rep.threads = pool.size();
  rep.shards = int(shards.size());
  for (const TensorInfo& t : model.weights->tensors()) rep.input_bytes += source_bytes(model, t);

  Progress progress("quantize", int64_t(model.weights->tensors().size()), rep.input_bytes, opts.progress);
  std::optional<QuantizedTensor> q;  // the module whose three output tensors are being written
  std::string q_source;
  nlohmann::json weight_map = nlohmann::json::object();

  for (size_t s = 0; s < shards.size(); ++s) {
    const std::string fname = shard_name(int(s), int(shards.size()));
    std::vector<TensorInfo> infos;
    for (size_t i : shards[s]) infos.push_back(outputs[i].info);
    RTNQ_ASSIGN_OR_RETURN(SafetensorsWriter w,
                          SafetensorsWriter::open(dir.tmp_path() / fname, infos, {{"format", "pt"}}));
    for (size_t i : shards[s]) {
      const OutputTensor& o = outputs[i];
      weight_map[o.info.name] = fname;
      const TensorInfo* src_info = model.weights->find(o.source);
      if (o.kind == OutputTensor::Kind::kCopy) {
        RTNQ_ASSIGN_OR_RETURN(TensorView v, model.weights->get(o.source));
        TensorView outv = is_float(o.info.dtype) ? to_dtype(v, o.info.dtype) : v;
        RTNQ_RETURN_IF_ERROR(w.write_tensor(o.info.name, outv.data, outv.nbytes()).with_context(fname));
        release_file_pages(v);
        progress.advance(1, source_bytes(model, *src_info), o.source);
        continue;
      }
      if (q_source != o.source) {
        RTNQ_ASSIGN_OR_RETURN(TensorView v, model.weights->get(o.source));
        // Quantize the weight as the output's model dtype holds it (GGUF/llama2.c: converted first),
        // so the result equals quantizing the equivalent Hugging Face checkpoint.
        TensorView in = to_dtype(v, outputs[i + 1].info.dtype);
        auto qt = rtn_quantize(in, precision_bits(o.spec.precision), o.spec.group_size, outputs[i + 1].info.dtype, &pool);
        if (!qt) return qt.status();
        q = std::move(qt.value());
        release_file_pages(v);
        q_source = o.source;
        ModuleReport mr;
        mr.layer = o.layer;
        mr.module = o.module;
        mr.spec = o.spec;
        mr.weights = v.numel();
        mr.bytes_in = source_bytes(model, *src_info);
        mr.bytes_out = outputs[i].info.nbytes() + outputs[i + 1].info.nbytes() + outputs[i + 2].info.nbytes();
        mr.rel_rms_error = q->relative_rms_error();
        mr.max_abs_error = q->max_abs_error;
        rep.modules.push_back(mr);
      }
      if (o.kind == OutputTensor::Kind::kPacked) {
        RTNQ_RETURN_IF_ERROR(w.write_tensor(o.info.name, q->packed.data(), q->packed.size() * 4).with_context(fname));
      } else if (o.kind == OutputTensor::Kind::kScale) {
        RTNQ_RETURN_IF_ERROR(w.write_tensor(o.info.name, q->scales.data(), q->scales.size()).with_context(fname));
      } else {
        const int64_t shape[2] = {q->rows, q->cols};
        RTNQ_RETURN_IF_ERROR(w.write_tensor(o.info.name, shape, sizeof shape).with_context(fname));
        progress.advance(1, source_bytes(model, *src_info), o.source);
        q.reset();
      }
    }
    RTNQ_RETURN_IF_ERROR(w.close());
  }
  for (const auto& o : outputs) rep.output_bytes += o.info.nbytes();
  rep.tensors_written = int64_t(outputs.size());
  // Kept linears and lm_head appear in the report too, so the table covers every layer.
  for (int64_t l = 0; l < int64_t(plan.layers.size()); ++l)
    for (int mi = 0; mi < kNumModules; ++mi)
      if (plan.at(l, Module(mi)).precision == Precision::kKeep) {
        const std::string name = module_hf_prefix(l, Module(mi)) + ".weight";
        if (const TensorInfo* t = model.weights->find(name)) {
          ModuleReport mr;
          mr.layer = l;
          mr.module = std::string(module_name(Module(mi)));
          mr.weights = t->numel();
          mr.bytes_in = source_bytes(model, *t);
          mr.bytes_out = mr.bytes_in;
          rep.modules.push_back(mr);
        }
      }

  if (shards.size() > 1) {
    nlohmann::json index = {{"metadata", {{"total_size", rep.output_bytes}}}, {"weight_map", weight_map}};
    RTNQ_RETURN_IF_ERROR(write_text_file(dir.tmp_path() / "model.safetensors.index.json", index.dump(2) + "\n"));
  }
  nlohmann::json config = spec_to_hf_config(model.spec);
  DType model_dtype = model.spec.torch_dtype;
  config["torch_dtype"] = std::string(dtype_torch_name(model_dtype));
  config["quantization_config"] = compressed_tensors_config(plan, model.spec);
  RTNQ_RETURN_IF_ERROR(write_text_file(dir.tmp_path() / "config.json", config.dump(2) + "\n"));
  std::vector<std::string> notes;
  RTNQ_RETURN_IF_ERROR(write_side_files(model, dir.tmp_path(), notes));
  for (const auto& n : notes) std::fprintf(stderr, "quantize: note: %s\n", n.c_str());
  progress.finish();
  RTNQ_RETURN_IF_ERROR(dir.commit());
  rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return rep;
}

}  // namespace rtnq
