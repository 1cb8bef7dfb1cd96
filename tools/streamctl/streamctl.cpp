// streamctl: inspects and controls a running job through the coordinator's
// REST API (JSON over HTTP, optional bearer token). Exit codes: 0 ok, 1 the
// server answered with an error, 2 usage error, 3 the server is unreachable.

#include <curl/curl.h>

#include <algorithm>
#include <boost/program_options.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "stream/options.hpp"

namespace po = boost::program_options;
using nlohmann::json;

namespace stream::ctl {
namespace {

constexpr const char* default_server = "http://127.0.0.1:8081";
constexpr std::chrono::milliseconds default_timeout{10'000};
// A savepoint writes the whole state before the coordinator answers.
constexpr std::chrono::milliseconds savepoint_timeout{30'000};

enum exit_code : int {
  exit_ok = 0,
  exit_server_error = 1,
  exit_usage = 2,
  exit_unreachable = 3,
};

/// A bad command line: printed with a hint, exit code 2.
struct usage_error {
  std::string message;
};

/// Any other failure, with the exit code that classifies it.
struct failure {
  int code;
  std::string message;
};

struct command_info {
  const char* name;
  const char* method;
  const char* path;
  const char* help;
};

// Every command, in `--help` order.
const command_info commands[] = {
    {"job", "GET", "/api/v1/job",
     "job state, attempt, restarts, uptime; operators and workers"},
    {"operators", "GET", "/api/v1/job", "operators with their parallelism"},
    {"keygroups", "GET", "/api/v1/job",
     "key-group ranges of every keyed operator subtask"},
    {"checkpoints", "GET", "/api/v1/checkpoints",
     "checkpoint counts and history"},
    {"savepoint", "POST", "/api/v1/savepoints",
     "take a savepoint and print its folder"},
    {"cancel", "POST", "/api/v1/cancel", "cancel the job"},
};

struct invocation {
  std::string server;
  std::string token;
  std::chrono::milliseconds timeout{0};  // 0: no limit
  bool json_output = false;
  const command_info* command = nullptr;
};

po::options_description visible_options() {
  po::options_description o{"Options"};
  o.add_options()("server", po::value<std::string>()->value_name("URL"),
                  "coordinator REST API (default: $STREAM_SERVER, else "
                  "http://127.0.0.1:8081)")(
      "token", po::value<std::string>()->value_name("TOKEN"),
      "bearer token (default: $STREAM_REST_TOKEN)")(
      "timeout", po::value<std::string>()->value_name("DURATION"),
      "give up after this long, e.g. 5s; 0 = never (default: 30s for "
      "savepoint, 10s otherwise)")(
      "json", po::bool_switch(),
      "print the server's JSON, pretty-printed, instead of tables")(
      "help,h", "print this help and exit");
  return o;
}

void print_help(std::ostream& out) {
  out << "Usage: streamctl [--server URL] [--token TOKEN] [--timeout DURATION] "
         "[--json] COMMAND\n\n"
      << visible_options() << "\nCommands:\n";
  for (const auto& c : commands) {
    std::string name = c.name;
    name.resize(std::max<std::size_t>(name.size(), 13), ' ');
    out << "  " << name << c.help << '\n';
  }
  out << "\nExit codes: 0 ok, 1 the server answered with an error, 2 usage "
         "error, 3 cannot connect.\n";
}

std::string env_or(const char* name, const char* fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? value : fallback;
}

std::string normalized_server(std::string url) {
  if (url.empty()) throw usage_error{"--server must not be empty"};
  if (url.find("://") == std::string::npos) url = "http://" + url;
  while (url.back() == '/') url.pop_back();
  return url;
}

// Returns nullopt when `--help` was asked for.
std::optional<invocation> parse(int argc, char** argv) {
  po::options_description all = visible_options();
  all.add_options()("command", po::value<std::string>());
  po::positional_options_description positional;
  positional.add("command", 1);
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(argc, argv)
                  .options(all)
                  .positional(positional)
                  .run(),
              vm);
  } catch (const po::error& e) {
    throw usage_error{e.what()};
  }
  if (vm.count("help") != 0) return std::nullopt;
  if (vm.count("command") == 0) throw usage_error{"missing COMMAND"};

  invocation inv;
  const std::string name = vm["command"].as<std::string>();
  for (const auto& c : commands) {
    if (name == c.name) inv.command = &c;
  }
  if (inv.command == nullptr) {
    throw usage_error{"unknown command '" + name + "'"};
  }
  inv.server = normalized_server(vm.count("server") != 0
                                     ? vm["server"].as<std::string>()
                                     : env_or("STREAM_SERVER", default_server));
  inv.token = vm.count("token") != 0 ? vm["token"].as<std::string>()
                                     : env_or("STREAM_REST_TOKEN", "");
  inv.json_output = vm["json"].as<bool>();
  inv.timeout = name == "savepoint" ? savepoint_timeout : default_timeout;
  if (vm.count("timeout") != 0) {
    auto d = parse_duration(vm["timeout"].as<std::string>());
    if (!d) throw usage_error{"--timeout: " + d.error().message()};
    inv.timeout = std::chrono::ceil<std::chrono::milliseconds>(*d);
  }
  return inv;
}

struct http_answer {
  long status = 0;
  std::string reason;  // of the last status line, e.g. "Unauthorized"
  std::string body;
};

std::size_t on_body(char* data, std::size_t size, std::size_t n, void* out) {
  static_cast<http_answer*>(out)->body.append(data, size * n);
  return size * n;
}

// Keeps the reason phrase of the status line ("HTTP/1.1 401 Unauthorized").
std::size_t on_header(char* data, std::size_t size, std::size_t n, void* out) {
  std::string_view line{data, size * n};
  if (line.rfind("HTTP/", 0) == 0) {
    const auto code = line.find(' ');
    const auto reason = line.find(' ', code == line.npos ? code : code + 1);
    line = reason == line.npos ? std::string_view{} : line.substr(reason + 1);
    while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) {
      line.remove_suffix(1);
    }
    static_cast<http_answer*>(out)->reason = line;
  }
  return size * n;
}

http_answer call(const invocation& inv) {
  const std::string url = inv.server + inv.command->path;
  const std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl{
      curl_easy_init(), &curl_easy_cleanup};
  if (curl == nullptr) throw failure{exit_unreachable, "cannot start libcurl"};
  std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)> headers{
      curl_slist_append(nullptr, "Accept: application/json"),
      &curl_slist_free_all};
  if (!inv.token.empty()) {
    const std::string auth = "Authorization: Bearer " + inv.token;
    headers.reset(curl_slist_append(headers.release(), auth.c_str()));
  }
  http_answer answer;
  char detail[CURL_ERROR_SIZE] = {};
  CURL* c = curl.get();
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS,
                   static_cast<long>(inv.timeout.count()));
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers.get());
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &answer);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, &on_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &answer);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, detail);
  if (std::string_view{inv.command->method} == "POST") {
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, 0L);
  }
  if (const CURLcode rc = curl_easy_perform(c); rc != CURLE_OK) {
    throw failure{exit_unreachable,
                  "cannot reach " + url + ": " +
                      (detail[0] != '\0' ? detail : curl_easy_strerror(rc))};
  }
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &answer.status);
  return answer;
}

// The body as a JSON object, or the failure the server reported.
json checked_body(const http_answer& answer, const invocation& inv) {
  json body = json::parse(answer.body, nullptr, false);
  if (answer.status < 200 || answer.status >= 300) {
    std::string text = "(no error text)";
    if (body.is_object() && body.contains("error") &&
        body["error"].is_string()) {
      text = body["error"].get<std::string>();
    } else if (!answer.body.empty()) {
      text = answer.body.substr(0, 200);
    }
    std::string status = std::to_string(answer.status);
    if (!answer.reason.empty()) status += " " + answer.reason;
    if (answer.status == 401 && inv.token.empty()) {
      text += " (set --token or STREAM_REST_TOKEN)";
    }
    throw failure{exit_server_error, status + ": " + text};
  }
  if (!body.is_object()) {
    throw failure{
        exit_server_error,
        inv.server + " answered with something other than a JSON object"};
  }
  return body;
}

// -- rendering ---------------------------------------------------------------

const json& array_of(const json& object, const char* key) {
  static const json empty = json::array();
  const auto it = object.find(key);
  return it != object.end() && it->is_array() ? *it : empty;
}

std::optional<double> number_of(const json& object, const char* key) {
  if (!object.is_object()) return std::nullopt;
  const auto it = object.find(key);
  if (it == object.end() || !it->is_number()) return std::nullopt;
  return it->get<double>();
}

// A field as table text; "-" when it is missing, null or an empty string.
std::string text_of(const json& object, const char* key) {
  if (!object.is_object()) return "-";
  const auto it = object.find(key);
  if (it == object.end() || it->is_null()) return "-";
  if (it->is_string()) {
    const auto& s = it->get_ref<const std::string&>();
    return s.empty() ? "-" : s;
  }
  if (it->is_boolean()) return it->get<bool>() ? "yes" : "no";
  return it->dump();
}

std::string fixed(double value, int decimals) {
  std::ostringstream out;
  out.setf(std::ios::fixed);
  out.precision(decimals);
  out << value;
  return out.str();
}

std::string human_bytes(std::optional<double> bytes) {
  if (!bytes) return "-";
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double value = *bytes;
  std::size_t unit = 0;
  while (value >= 1024 && unit + 1 < std::size(units)) {
    value /= 1024;
    ++unit;
  }
  return (unit == 0 ? fixed(value, 0) : fixed(value, 1)) + " " + units[unit];
}

std::string human_ms(std::optional<double> ms) {
  if (!ms) return "-";
  return *ms < 1000 ? fixed(*ms, 1) + " ms" : fixed(*ms / 1000, 2) + " s";
}

std::string human_uptime(std::optional<double> seconds) {
  if (!seconds) return "-";
  if (*seconds < 60) return fixed(*seconds, 1) + "s";
  const auto whole = static_cast<long long>(*seconds);
  const long long d = whole / 86400, h = whole / 3600 % 24, m = whole / 60 % 60,
                  s = whole % 60;
  if (d > 0) return std::to_string(d) + "d " + std::to_string(h) + "h";
  if (h > 0) return std::to_string(h) + "h " + std::to_string(m) + "m";
  return std::to_string(m) + "m " + std::to_string(s) + "s";
}

struct column {
  std::string title;
  bool numeric = false;  // right-aligned
};

/// Columns padded to their widest cell, two spaces apart, numbers aligned
/// right; a missing cell shows as "-".
class table {
 public:
  explicit table(std::vector<column> columns) : columns_(std::move(columns)) {
    std::vector<std::string> titles;
    for (const auto& c : columns_) titles.push_back(c.title);
    add(std::move(titles));
  }

  void add(std::vector<std::string> row) {
    row.resize(columns_.size(), "-");
    widths_.resize(columns_.size(), 0);
    for (std::size_t i = 0; i < row.size(); ++i) {
      widths_[i] = std::max(widths_[i], row[i].size());
    }
    rows_.push_back(std::move(row));
  }

  void print(std::ostream& out) const {
    for (const auto& row : rows_) {
      std::string line;
      for (std::size_t i = 0; i < row.size(); ++i) {
        const std::string pad(widths_[i] - row[i].size(), ' ');
        const bool last = i + 1 == row.size();
        line += columns_[i].numeric ? pad + row[i] : row[i] + (last ? "" : pad);
        if (!last) line += "  ";
      }
      out << line << '\n';
    }
  }

 private:
  std::vector<column> columns_;
  std::vector<std::size_t> widths_;
  std::vector<std::vector<std::string>> rows_;
};

void print_operators(const json& job, std::ostream& out) {
  table t{{{"ID", true},
           {"NAME"},
           {"KIND"},
           {"PARALLELISM", true},
           {"KEYED"},
           {"CHAIN"}}};
  for (const auto& op : array_of(job, "operators")) {
    t.add({text_of(op, "id"), text_of(op, "name"), text_of(op, "kind"),
           text_of(op, "parallelism"), text_of(op, "keyed"),
           text_of(op, "chain")});
  }
  t.print(out);
}

void print_workers(const json& job, std::ostream& out) {
  table t{{{"ID"}, {"ADDRESS"}, {"SLOTS", true}, {"USED", true}, {"STATE"}}};
  for (const auto& w : array_of(job, "workers")) {
    t.add({text_of(w, "id"), text_of(w, "address"), text_of(w, "slots"),
           text_of(w, "used"), text_of(w, "state")});
  }
  t.print(out);
}

void print_job(const json& job, std::ostream& out) {
  const std::pair<const char*, std::string> summary[] = {
      {"job:      ", text_of(job, "job")},
      {"state:    ", text_of(job, "state")},
      {"attempt:  ", text_of(job, "attempt")},
      {"restarts: ", text_of(job, "restarts")},
      {"uptime:   ", human_uptime(number_of(job, "uptime_seconds"))},
  };
  for (const auto& [label, value] : summary) out << label << value << '\n';
  out << "\nOperators\n";
  print_operators(job, out);
  out << "\nWorkers\n";
  print_workers(job, out);
}

void print_key_groups(const json& job, std::ostream& out) {
  table t{{{"OPERATOR"},
           {"TABLE", true},
           {"SUBTASK", true},
           {"KEY GROUPS"},
           {"COUNT", true},
           {"WORKER"}}};
  for (const auto& op : array_of(job, "key_groups")) {
    for (const auto& s : array_of(op, "subtasks")) {
      t.add({text_of(op, "operator"), "v" + text_of(op, "table_version"),
             text_of(s, "subtask"), text_of(s, "key_groups"),
             text_of(s, "count"), text_of(s, "worker")});
    }
  }
  t.print(out);
}

void print_checkpoints(const json& body, std::ostream& out) {
  const json& counts = body.contains("counts") ? body["counts"] : json{};
  out << "completed " << text_of(counts, "completed") << ", failed "
      << text_of(counts, "failed") << ", in progress "
      << text_of(counts, "in_progress") << "\n\n";
  table t{{{"ID", true},
           {"KIND"},
           {"STATUS"},
           {"DURATION", true},
           {"SIZE", true},
           {"FOLDER"},
           {"REASON"}}};
  for (const auto& c : array_of(body, "history")) {
    t.add({text_of(c, "id"), text_of(c, "kind"), text_of(c, "status"),
           human_ms(number_of(c, "duration_ms")),
           human_bytes(number_of(c, "size_bytes")), text_of(c, "folder"),
           text_of(c, "reason")});
  }
  t.print(out);
}

void print_result(const invocation& inv, const json& body, std::ostream& out) {
  const std::string_view name = inv.command->name;
  if (inv.json_output) {
    out << body.dump(2, ' ', false, json::error_handler_t::replace) << '\n';
  } else if (name == "job") {
    print_job(body, out);
  } else if (name == "operators") {
    print_operators(body, out);
  } else if (name == "keygroups") {
    print_key_groups(body, out);
  } else if (name == "checkpoints") {
    print_checkpoints(body, out);
  } else if (name == "savepoint") {
    out << text_of(body, "kind") << ' ' << text_of(body, "id") << " written to "
        << text_of(body, "folder") << '\n';
  } else {
    out << "state: " << text_of(body, "state") << '\n';
  }
}

int run(int argc, char** argv) {
  try {
    const auto inv = parse(argc, argv);
    if (!inv) {
      print_help(std::cout);
      return exit_ok;
    }
    const http_answer answer = call(*inv);
    print_result(*inv, checked_body(answer, *inv), std::cout);
    return exit_ok;
  } catch (const usage_error& e) {
    std::cerr << "streamctl: " << e.message
              << "\nTry 'streamctl --help' for more information.\n";
    return exit_usage;
  } catch (const failure& f) {
    std::cerr << "streamctl: " << f.message << '\n';
    return f.code;
  }
}

}  // namespace
}  // namespace stream::ctl

int main(int argc, char** argv) {
  try {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
      std::cerr << "streamctl: cannot initialise libcurl\n";
      return stream::ctl::exit_unreachable;
    }
    const int code = stream::ctl::run(argc, argv);
    curl_global_cleanup();
    return code;
  } catch (const std::exception& e) {
    std::cerr << "streamctl: " << e.what() << '\n';
    return stream::ctl::exit_server_error;
  }
}
