#include "util/error.hpp"

#include <cstring>

namespace gang {

std::string Error::to_string() const {
  std::string out;
  if (!file.empty()) {
    out += file;
    if (line > 0) {
      out += ':' + std::to_string(line);
      if (column > 0) out += ':' + std::to_string(column);
    }
    out += ": ";
  }
  out += message;
  return out;
}

std::unexpected<Error> make_errno_error(const std::string& what, int errno_value) {
  return make_error(what + ": " + std::strerror(errno_value));
}

}  // namespace gang
