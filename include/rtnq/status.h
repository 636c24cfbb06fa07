// Status and Expected<T>: how every user-causable failure crosses the public API.
// Exceptions never cross it; internal invariants use RTNQ_CHECK (src/core/check.h) instead.
#pragma once

#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace rtnq {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,  // a bad flag, plan or shape given by the user
  kNotFound,         // a file or tensor that should be there is not
  kCorrupt,          // a file whose bytes contradict its own header
  kUnsupported,      // valid input we do not handle (unknown architecture, dtype)
  kIo,               // the OS refused (permissions, full disk)
  kAlreadyExists,    // refusing to overwrite without --force
  kInternal,
};

const char* status_code_name(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status ok() { return {}; }
  bool is_ok() const { return code_ == StatusCode::kOk; }
  explicit operator bool() const { return is_ok(); }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "corrupt: model.safetensors: tensor 'x': ..." — for printing to the user.
  std::string to_string() const;
  // Prefix context (a file or tensor name) while an error travels outwards.
  Status with_context(const std::string& context) const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status invalid_argument(std::string m) { return {StatusCode::kInvalidArgument, std::move(m)}; }
inline Status not_found(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
inline Status corrupt(std::string m) { return {StatusCode::kCorrupt, std::move(m)}; }
inline Status unsupported(std::string m) { return {StatusCode::kUnsupported, std::move(m)}; }
inline Status io_error(std::string m) { return {StatusCode::kIo, std::move(m)}; }

// A value or the Status explaining why there is none.
template <typename T>
class [[nodiscard]] Expected {
 public:
  Expected(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Expected(Status status) : v_(std::move(status)) { assert(!std::get<Status>(v_).is_ok()); }  // NOLINT

  bool has_value() const { return v_.index() == 0; }
  explicit operator bool() const { return has_value(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  const Status& status() const {
    static const Status kOk;
    return has_value() ? kOk : std::get<1>(v_);
  }

 private:
  std::variant<T, Status> v_;
};

}  // namespace rtnq

#define RTNQ_CONCAT_INNER(a, b) a##b
#define RTNQ_CONCAT(a, b) RTNQ_CONCAT_INNER(a, b)

// Return the Status from the enclosing function if `expr` (a Status) failed.
#define RTNQ_RETURN_IF_ERROR(expr)                     \
  do {                                                 \
    ::rtnq::Status _rtnq_st = (expr);                  \
    if (!_rtnq_st.is_ok()) return _rtnq_st;            \
  } while (0)

// `RTNQ_ASSIGN_OR_RETURN(auto x, f());` unwraps an Expected or returns its Status.
#define RTNQ_ASSIGN_OR_RETURN(lhs, expr)                                        \
  auto RTNQ_CONCAT(_rtnq_ex_, __LINE__) = (expr);                               \
  if (!RTNQ_CONCAT(_rtnq_ex_, __LINE__)) return RTNQ_CONCAT(_rtnq_ex_, __LINE__).status(); \
  lhs = std::move(RTNQ_CONCAT(_rtnq_ex_, __LINE__)).value()
