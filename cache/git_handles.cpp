#include "cache/git_handles.hpp"


namespace gang {

namespace {

struct Libgit2Guard {
  int status = 0;
  Libgit2Guard() : status(git_libgit2_init()) {}
  ~Libgit2Guard() {
    if (status >= 0) git_libgit2_shutdown();
  }
  Libgit2Guard(const Libgit2Guard&) = delete;
  Libgit2Guard& operator=(const Libgit2Guard&) = delete;
};

}  // namespace

Result<void> ensure_libgit2() {
  static Libgit2Guard guard;  // thread-safe static initialisation
  if (guard.status < 0) return libgit2_error("cannot initialise libgit2", guard.status);
  return {};
}

std::unexpected<Error> libgit2_error(const std::string& what, int code) {
  const ::git_error* last = git_error_last();
  std::string message = what;
  if (last != nullptr && last->message != nullptr && last->message[0] != '\0')
    message += std::string(": ") + last->message;
  message += " (libgit2 code " + std::to_string(code) + ")";
  return make_error(std::move(message));
}

}  // namespace gang
