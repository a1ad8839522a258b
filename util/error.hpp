// util/: basics that know nothing about builds: errors as values, SHA-256,
// file-system helpers, string helpers. Every other folder depends on it; it
// depends on nothing of gang's.
//
// error.hpp: the error value every fallible gang function returns through
// std::expected. An Error carries a message plus, where known, the place in
// the user's input it points at (file, line, column, field). Thread-safe as a
// plain value type.
#pragma once

#include <cerrno>
#include <expected>
#include <string>
#include <utility>

namespace gang {

struct Error {
  std::string message;   // what went wrong, without the location prefix
  std::string file;      // the user's file it points at, if any
  int line = 0;          // 1-based; 0 when unknown
  int column = 0;        // 1-based; 0 when unknown
  std::string field;     // the YAML field or key involved, if any

  // "file:line:column: message", with absent parts left out.
  [[nodiscard]] std::string to_string() const;
};

template <typename T>
using Result = std::expected<T, Error>;

// An Error holding only a message.
[[nodiscard]] inline std::unexpected<Error> make_error(std::string message) {
  return std::unexpected(Error{std::move(message), {}, 0, 0, {}});
}

// An Error naming a place in a user's file.
[[nodiscard]] inline std::unexpected<Error> make_error_at(std::string file, int line,
                                                          std::string message,
                                                          std::string field = {},
                                                          int column = 0) {
  return std::unexpected(
      Error{std::move(message), std::move(file), line, column, std::move(field)});
}

// r's error, passed on to a caller of another result type.
template <typename T>
[[nodiscard]] std::unexpected<Error> pass(const Result<T>& r) {
  return std::unexpected(r.error());
}

// An Error for a failed system call: "what: strerror(errno_value)".
[[nodiscard]] std::unexpected<Error> make_errno_error(const std::string& what,
                                                      int errno_value = errno);

}  // namespace gang
