// gang timeline REPORT.json [-o FILE.png|.svg]: draws a run report as one
// row per instance and one bar per build, lost races and wasted work
// marked, with the moment the target was published and when each instance
// exited. The drawing is matplotlib's (Debian's python3-matplotlib), run
// from a script embedded in the binary (gang/timeline_plot.py).
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cxxopts.hpp>
#include <nlohmann/json.hpp>

#include "gang/cli.hpp"
#include "gang/commands.hpp"
#include "util/fs.hpp"

namespace gang {

extern const char* const k_timeline_plot_py;

namespace {

// Debian's interpreter first: it is the one python3-matplotlib installs into
// (a python3 earlier on PATH, from pyenv or a venv, may lack it).
std::string python() {
  if (::access("/usr/bin/python3", X_OK) == 0) return "/usr/bin/python3";
  return "python3";
}

}  // namespace

int cmd_timeline(const Args& args) {
  cxxopts::Options options("gang timeline", "Draw a run report (gang build --report) as a timeline.");
  options.positional_help("REPORT.json");
  options.add_options()
      ("report", "the report", cxxopts::value<std::string>())
      ("o,output", "the picture: .png or .svg (default: REPORT with .png)", cxxopts::value<std::string>())
      ("h,help", "print this help");
  options.parse_positional({"report"});
  auto result = parse_options(options, args);
  if (!result) return result.error();
  const cxxopts::ParseResult& parsed = *result;
  if (!parsed.count("report")) {
    std::fputs("gang: error: gang timeline needs a REPORT.json (from gang build --report)\n", stderr);
    return 2;
  }
  std::string report = parsed["report"].as<std::string>();
  std::string output;
  if (parsed.count("output")) {
    output = parsed["output"].as<std::string>();
  } else {
    output = report.ends_with(".json") ? report.substr(0, report.size() - 5) : report;
    output += ".png";
  }
  if (!output.ends_with(".png") && !output.ends_with(".svg")) {
    std::fprintf(stderr, "gang: error: %s: the timeline is a .png or an .svg\n", output.c_str());
    return 2;
  }
  // Check the report here, for an error that names it (not a Python trace).
  auto text = read_regular_file(report);
  if (!text) {
    std::fprintf(stderr, "gang: error: %s\n", text.error().to_string().c_str());
    return 1;
  }
  auto json = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object() || !json.contains("schema_version")) {
    std::fprintf(stderr, "gang: error: %s: not a gang run report (gang build --report FILE)\n",
                 report.c_str());
    return 1;
  }
  if (!json.contains("per_instance")) {
    std::fprintf(stderr, "gang: error: %s: the run ended before any worker started (%s)\n",
                 report.c_str(), json.value("error", std::string("no workers")).c_str());
    return 1;
  }
  std::string interpreter = python();
  pid_t pid = ::fork();
  if (pid < 0) {
    std::perror("gang: error: fork");
    return 1;
  }
  if (pid == 0) {
    ::execlp(interpreter.c_str(), interpreter.c_str(), "-c", k_timeline_plot_py, report.c_str(),
             output.c_str(), static_cast<char*>(nullptr));
    std::fprintf(stderr, "gang: error: cannot run %s: %s\n", interpreter.c_str(), std::strerror(errno));
    ::_exit(127);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::fprintf(stderr,
                 "gang: error: drawing the timeline failed (it needs python3-matplotlib: "
                 "apt-get install python3-matplotlib)\n");
    return 1;
  }
  std::printf("%s\n", output.c_str());
  return 0;
}

}  // namespace gang
