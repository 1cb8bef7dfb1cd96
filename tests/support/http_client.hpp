#pragma once

#include <string>

namespace stream::testing {

/// GET `url` with a 10 s timeout; a failed request fails the current test
/// and returns what arrived.
std::string http_get(const std::string& url);

}  // namespace stream::testing
