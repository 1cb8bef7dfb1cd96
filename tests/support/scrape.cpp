#include "scrape.hpp"

#include <curl/curl.h>
#include <gtest/gtest.h>

#include <regex>
#include <sstream>

namespace stream::testing {

namespace {

std::size_t append_body(char* data, std::size_t size, std::size_t n,
                        void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

}  // namespace

std::string http_get(const std::string& url) {
  std::string body;
  CURL* curl = curl_easy_init();
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, append_body);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT, 10L);
  auto rc = curl_easy_perform(curl);
  curl_easy_cleanup(curl);
  EXPECT_EQ(rc, CURLE_OK) << url << ": " << curl_easy_strerror(rc);
  return body;
}

std::vector<sample> parse_samples(const std::string& text) {
  std::vector<sample> out;
  std::istringstream in{text};
  std::string line;
  const std::regex re{R"(^([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\} (\S+)$)"};
  while (std::getline(in, line)) {
    std::smatch m;
    if (std::regex_match(line, m, re))
      out.push_back({m[1], m[2], std::stod(m[3])});
  }
  return out;
}

double sum_of(const std::string& text, const std::string& metric,
              const std::string& label) {
  double total = 0;
  for (const auto& s : parse_samples(text)) {
    if (s.name == metric && s.labels.find(label) != std::string::npos)
      total += s.value;
  }
  return total;
}

}  // namespace stream::testing
