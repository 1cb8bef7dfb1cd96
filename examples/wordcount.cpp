// Counts words: lowercases the text, splits it on every character that is
// not an ASCII letter or digit, and emits "word<TAB>count" on every update,
// so the last line for a word holds its total.
//
//   build/examples/wordcount --input book.txt --output counts.tsv
//   build/examples/wordcount --lines 1000000 --parallelism 4

#include <cctype>
#include <cstdint>
#include <string>

#include "stream/run.hpp"

namespace {

void tokenize(const std::string& line, stream::emitter<std::string>& out) {
  std::string word;
  for (char c : line) {
    auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u) != 0) {
      word.push_back(static_cast<char>(std::tolower(u)));
    } else if (!word.empty()) {
      out.emit(std::move(word));
      word.clear();
    }
  }
  if (!word.empty()) out.emit(std::move(word));
}

// Deterministic text for runs without --input.
std::string generated_line(std::uint64_t index) {
  static const char* const words[] = {
      "stream", "actor", "batch",  "credit", "key",   "group",   "window",
      "state",  "sink",  "source", "record", "event", "barrier", "time"};
  constexpr std::uint64_t n = sizeof(words) / sizeof(words[0]);
  std::string line;
  auto x = index * 0x9E3779B97F4A7C15ULL;
  for (int i = 0; i < 8; ++i) {
    if (i > 0) line += ' ';
    line += words[(x >> (i * 7)) % n];
  }
  return line;
}

}  // namespace

int main(int argc, char** argv) {
  return stream::run(
      argc, argv,
      [](stream::environment& env) {
        auto lines = env.has_arg("input")
                         ? env.read_text_file(env.arg("input"))
                         : env.from_generator(generated_line,
                                              {.count = env.arg_u64("lines")});
        lines.flat_map<std::string>(tokenize)
            .name("tokenize")
            .key_by([](const std::string& word) -> const std::string& {
              return word;
            })
            .aggregate(
                std::uint64_t{0},
                [](std::uint64_t& count, const std::string&) { ++count; },
                [](const std::string& word, const std::uint64_t& count) {
                  return word + '\t' + std::to_string(count);
                })
            .name("count")
            .write_text_file(env.arg("output"))
            .name("output");
      },
      {{"input", "text file to read, one record per line", ""},
       {"output", "file to write, - for stdout", "-"},
       {"lines", "lines to generate when --input is absent", "100000",
        stream::option_kind::unsigned_integer}});
}
