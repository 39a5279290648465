#pragma once
// The storage layer's error model: functions return Status or Result<T>,
// never throw. Callers at the RPC boundary turn a failed Status into an
// exception with the same one-line message.
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <utility>

namespace strata {

class Status {
 public:
  Status() = default;
  static Status Ok() { return Status(); }
  static Status Error(std::string message) { return Status(std::move(message)); }

  bool ok() const { return !message_.has_value(); }
  const std::string& message() const {
    static const std::string kOk = "ok";
    return message_ ? *message_ : kOk;
  }

 private:
  explicit Status(std::string message) : message_(std::move(message)) {}
  std::optional<std::string> message_;
};

// Either a value or the Status that explains why there is none.
template <typename T>
class Result {
 public:
  Result(T value) : value_(std::move(value)) {}            // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {     // NOLINT: implicit by design
    if (status_.ok()) status_ = Status::Error("a Result was made from an ok Status, with no value");
  }

  bool ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }
  // The value; on an error, a bug in the caller: the process stops naming
  // the error rather than reading memory that holds no T.
  T& value() { return Checked(); }
  const T& value() const { return const_cast<Result*>(this)->Checked(); }
  T* operator->() { return &Checked(); }
  const T* operator->() const { return &value(); }
  T& operator*() { return Checked(); }

 private:
  T& Checked() {
    if (!value_.has_value()) {
      std::fprintf(stderr, "strata: bug: Result::value() on an error: %s\n", status_.message().c_str());
      std::abort();
    }
    return *value_;
  }

  std::optional<T> value_;
  Status status_;
};

}  // namespace strata
