// One loader per source format; load_model() (load-model.cpp) detects the format and calls one.
// Each returns a LoadedModel whose WeightSource serves Hugging Face Llama names and layouts.
#pragma once

#include <filesystem>

#include "rtnq/model.h"

namespace rtnq {

// A folder with config.json and model.safetensors (or shards + model.safetensors.index.json).
// Also reads our own and other compressed-tensors quantized checkpoints (tensors served raw).
Expected<LoadedModel> load_hf_folder(const std::filesystem::path& dir);        // hf-loader.cpp
// A GGUF v2/v3 file (block formats dequantized to F32; q/k rows un-permuted to half-split).
Expected<LoadedModel> load_gguf(const std::filesystem::path& file);            // gguf-loader.cpp
// A llama2.c checkpoint (7 x int32 header + fp32 weights); tokenizer from tok*.bin beside it.
Expected<LoadedModel> load_llama2c(const std::filesystem::path& file);         // llama2c-loader.cpp

// Hugging Face's q/k row permutation: turns a Meta/llama.cpp interleaved-RoPE projection
// [n_heads * head_dim, in] into the half-split layout, and back. Used by the GGUF and llama2.c
// loaders (and their tests), defined once in rope-permute.cpp.
void permute_rows_interleaved_to_half(const float* src, float* dst, int64_t n_heads, int64_t head_dim, int64_t cols);
void permute_rows_half_to_interleaved(const float* src, float* dst, int64_t n_heads, int64_t head_dim, int64_t cols);

}  // namespace rtnq
