#include "deploy/extension.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <vector>

#include "util/fs.hpp"
#include "util/path_name.hpp"

extern char** environ;

namespace gang {

namespace {

bool is_upper_case(const std::string& key) {
  bool letter = false;
  for (char c : key) {
    if (std::islower(static_cast<unsigned char>(c))) return false;
    if (std::isupper(static_cast<unsigned char>(c))) letter = true;
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
  }
  return letter;
}

// The program a name on PATH stands for ("" if none).
std::string on_path(const std::string& program) {
  if (program.find('/') != std::string::npos)
    return ::access(program.c_str(), X_OK) == 0 ? program : "";
  const char* path = std::getenv("PATH");
  std::string dirs = path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin";
  std::size_t start = 0;
  while (start <= dirs.size()) {
    std::size_t colon = dirs.find(':', start);
    std::string dir = dirs.substr(start, colon == std::string::npos ? std::string::npos : colon - start);
    std::string candidate = (dir.empty() ? "." : dir) + "/" + program;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    if (colon == std::string::npos) break;
    start = colon + 1;
  }
  return "";
}

// The interpreter a shebang line asks for: "/usr/bin/python2", or for
// "#!/usr/bin/env python2" the word after env. nullopt: no shebang.
std::optional<std::string> shebang_program(const std::string& head) {
  if (!head.starts_with("#!")) return std::nullopt;
  std::string line = head.substr(2, head.find('\n') == std::string::npos ? std::string::npos
                                                                         : head.find('\n') - 2);
  std::vector<std::string> words;
  std::string word;
  for (char c : line) {
    if (c == ' ' || c == '\t' || c == '\r') {
      if (!word.empty()) words.push_back(std::move(word));
      word.clear();
    } else {
      word += c;
    }
  }
  if (!word.empty()) words.push_back(word);
  if (words.empty()) return std::string();
  if (words[0].ends_with("/env")) {
    for (std::size_t i = 1; i < words.size(); ++i)
      if (!words[i].starts_with("-")) return words[i];
    return std::string();
  }
  return words[0];
}

}  // namespace

std::string_view to_string(ExtensionStep step) {
  switch (step) {
    case ExtensionStep::configure: return "configure";
    case ExtensionStep::check: return "check";
    case ExtensionStep::write: return "write";
  }
  return "?";
}

Result<std::optional<Extension>> find_extension(const std::string& definitions_root,
                                                const std::string& name, ExtensionStep step) {
  std::string base = name.substr(name.rfind('/') == std::string::npos ? 0 : name.rfind('/') + 1);
  if (auto ok = check_name(base); !ok)
    return make_error("extension name \"" + name + "\": " + ok.error().to_string());
  std::string path = definitions_root + "/extensions/" + base + "." + std::string(to_string(step));
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return std::optional<Extension>();
    return make_errno_error("cannot stat " + path);
  }
  if (!S_ISREG(st.st_mode)) return make_error(path + ": an extension must be a regular file");
  Extension extension{base, step, path, ""};
  auto head = read_regular_file(path);
  if (!head) return std::unexpected(head.error());
  if (auto program = shebang_program(head->substr(0, 512)); program && !program->empty())
    extension.interpreter = *program;
  return std::optional<Extension>(extension);
}

Result<void> check_runnable(const Extension& extension) {
  if (::access(extension.path.c_str(), R_OK) != 0)
    return make_errno_error("cannot read the extension " + extension.path);
  if (!extension.interpreter.empty() && on_path(extension.interpreter).empty())
    return make_error("the extension " + extension.path + " needs the interpreter " +
                      extension.interpreter + ", which this machine lacks (its #! line)");
  return {};
}

Result<void> run_extension(const Extension& extension, const ExtensionCall& call) {
  if (auto ok = check_runnable(extension); !ok) return ok;
  std::vector<std::string> argv;
  // Through the interpreter named by the shebang, so the file need not be
  // executable (a checkout may lose the mode); a binary runs directly.
  if (!extension.interpreter.empty()) {
    argv.push_back(on_path(extension.interpreter));
  }
  argv.push_back(extension.path);
  if (extension.step != ExtensionStep::check) argv.push_back(call.rootdir);
  if (extension.step != ExtensionStep::configure) argv.push_back(call.location);

  std::map<std::string, std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string entry = *e;
    auto eq = entry.find('=');
    if (eq != std::string::npos) env[entry.substr(0, eq)] = entry.substr(eq + 1);
  }
  env["UPGRADE"] = call.upgrade ? "yes" : "no";
  std::string extensions_dir = call.definitions_root + "/extensions";
  env["PYTHONPATH"] = env.contains("PYTHONPATH") ? env["PYTHONPATH"] + ":" + extensions_dir : extensions_dir;
  for (const auto& [key, value] : call.parameters)
    if (is_upper_case(key)) env[key] = value;
  std::vector<std::string> env_entries;
  for (const auto& [key, value] : env) env_entries.push_back(key + "=" + value);

  std::vector<char*> cargv, cenv;
  for (auto& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  for (auto& e : env_entries) cenv.push_back(e.data());
  cenv.push_back(nullptr);

  pid_t pid = ::fork();
  if (pid < 0) return make_errno_error("cannot start the extension " + extension.path);
  if (pid == 0) {
    if (call.output_fd >= 0) {
      ::dup2(call.output_fd, 1);
      ::dup2(call.output_fd, 2);
    }
    int null = ::open("/dev/null", O_RDONLY);
    if (null >= 0) ::dup2(null, 0);
    if (::chdir(call.definitions_root.c_str()) != 0) ::_exit(126);
    ::execve(cargv[0], cargv.data(), cenv.data());
    ::_exit(127);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return make_errno_error("waiting for the extension " + extension.path);
  }
  std::string what = extension.name + "." + std::string(to_string(extension.step));
  if (WIFSIGNALED(status))
    return make_error("the extension " + what + " was killed by signal " +
                      std::to_string(WTERMSIG(status)));
  if (WEXITSTATUS(status) != 0)
    return make_error("the extension " + what + " failed with exit status " +
                      std::to_string(WEXITSTATUS(status)));
  return {};
}

}  // namespace gang
