// How the CUDA backend reports a rejected call: a cudaError_t for the caller to branch on, and a sentence for
// gemm_error_message() naming the argument and what was expected.
#pragma once

#include <cuda_runtime.h>

#include <string>

#include "cuda/gemm.h"

namespace rtnq::cuda::detail {

// Records `message` for gemm_error_message() and returns `code`.
cudaError_t fail(cudaError_t code, std::string message);
// Clears the message (a successful call leaves none behind).
void clear_error();
// After a launch: the launch's own error, recorded with `what`.
cudaError_t check_launch(const char* what);
// Shape, dtype, group and buffer checks every entry point taking a repacked weight runs first.
cudaError_t validate_weight(const RepackedWeight& w, const char* who);

}  // namespace rtnq::cuda::detail
