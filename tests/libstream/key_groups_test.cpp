#include "stream/key_groups.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

using stream::key_group;
using stream::key_group_range;
using stream::key_group_table;

std::vector<std::uint8_t> from_hex(std::string_view hex) {
  std::vector<std::uint8_t> bytes;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2) {
    bytes.push_back(static_cast<std::uint8_t>(
        std::stoi(std::string{hex.substr(i, 2)}, nullptr, 16)));
  }
  return bytes;
}

std::uint32_t murmur3_of(std::string_view text, std::uint32_t seed = 0) {
  return stream::murmur3_32(text.data(), text.size(), seed);
}

struct murmur_vector {
  std::string_view input_hex;
  std::uint32_t seed;
  std::uint32_t expected;
};

// Random inputs of lengths 0..64 hashed with Python's
// `mmh3.hash(bytes.fromhex(input_hex), seed, signed=False)` (mmh3 5.3.1),
// one row per length class so every tail size (0..3) is covered.
constexpr std::array<murmur_vector, 21> mmh3_vectors{{
    {"", 0xc678f893u, 0x6ae6c58au},
    {"9f", 0xffffffffu, 0x374cd2f8u},
    {"eb0d", 0x9747b28cu, 0x20b34b9fu},
    {"ba80c2", 0x00000000u, 0xf9aca5b3u},
    {"496ed41f", 0x00000001u, 0xb4b1ddb3u},
    {"3ed72174c0", 0x00000000u, 0xf89b7285u},
    {"7177d41598d8", 0x00000001u, 0xb0cf210eu},
    {"37c283add38310", 0xffffffffu, 0x42c37df9u},
    {"53fc7b9e4b461976", 0xba98f517u, 0x66c51fb4u},
    {"e14dde4d83382cba6f625f", 0x00000001u, 0x558415a2u},
    {"7f07223086417105b3c693a536", 0x855e67d0u, 0x95e09364u},
    {"a362a5797295a4cd1cc9e78f855c7cd4", 0x00000000u, 0x33b1c7dfu},
    {"4bf930917899157f55c265b3d66883deaa93ca", 0x00000001u, 0x0d920c77u},
    {"666d39cd0f5faccf4543a54f00dd55ca9d3316d4e3de844c", 0x9747b28cu,
     0xe6303bc6u},
    {"14bf0e473473c928c03e30085cc1ccc80f8d2c9aa7f314255ceff0bc79cb06",
     0x581a1af1u, 0xbc8dc7c6u},
    {"4dbc291702209c7ef87624936abbfe660288c3c23e98377fa9c5b0b5588254d6",
     0x00000001u, 0x5ef385a8u},
    {"b6c6b953b335f985e90255d68a04f33c3fd65c5fc586b9d26db20b8dc425eaed"
     "e413be40de",
     0x9747b28cu, 0x9b576117u},
    {"e3fc21b82279e994003e2aaf1bac490289b71b43963e03923b8d0a13c6fe6e84"
     "e1da8929aa7cbbf7e8d3309d1e",
     0x9747b28cu, 0xf4388f07u},
    {"87c50645c395894ae7eef913ea3866f9a0a55070e429e8e396ba3d432345b32e"
     "88f707874f9fc2027a9c855d112f22cefef6",
     0x00000000u, 0x41471f75u},
    {"7f324a73be4a558057d66518ad19f299640527611366b77084a8e80f6d3f4c18"
     "5462251a495595e1e90947a2b000b6d9d502a2a99582248d628846cf6fb4e8",
     0x9747b28cu, 0x0ddba300u},
    {"005308eb345c8b73cee618f1961cd7db42a142dc733eb1e47f0deecbae2235dc"
     "4ffd38db7fe9d601aaee36ff041b2c3bfe3b519e5035f5f9d6662a8aae2d7406",
     0xffffffffu, 0xddb963afu},
}};

// Flink's KeyGroupRangeAssignment, transcribed literally with Java `int`
// arithmetic. KeyGroupRange's end is inclusive.
struct flink_key_group_range {
  int start;
  int end;
};

flink_key_group_range flink_compute_key_group_range_for_operator_index(
    int max_parallelism, int parallelism, int operator_index) {
  int start =
      ((operator_index * max_parallelism + parallelism - 1) / parallelism);
  int end = ((operator_index + 1) * max_parallelism - 1) / parallelism;
  return {start, end};
}

int flink_compute_operator_index_for_key_group(int max_parallelism,
                                               int parallelism,
                                               int key_group_id) {
  return key_group_id * parallelism / max_parallelism;
}

// `computeKeyGroupForKeyHash` after `MathUtils.murmurHash`, whose result is
// always a non-negative int.
int flink_compute_key_group_for_key_hash(int non_negative_hash,
                                         int max_parallelism) {
  return non_negative_hash % max_parallelism;
}

constexpr std::array<std::pair<std::uint32_t, std::uint32_t>, 10> flink_cases{
    {{128, 1},
     {128, 2},
     {128, 3},
     {128, 7},
     {128, 128},
     {256, 10},
     {4096, 33},
     {32768, 1000},
     {1, 1},
     {7, 3}}};

TEST(murmur3_32, matches_the_published_reference_vectors) {
  EXPECT_EQ(murmur3_of("", 0), 0u);
  EXPECT_EQ(murmur3_of("", 1), 0x514e28b7u);
  EXPECT_EQ(murmur3_of("", 0xffffffffu), 0x81f16f39u);
  EXPECT_EQ(murmur3_of(std::string_view{"\0\0\0\0", 4}, 0), 0x2362f9deu);
  EXPECT_EQ(murmur3_of("\xff\xff\xff\xff", 0), 0x76293b50u);
  EXPECT_EQ(murmur3_of("\x21\x43\x65\x87", 0), 0xf55b516bu);
  EXPECT_EQ(murmur3_of("\x21\x43\x65\x87", 0x5082edeeu), 0x2362f9deu);
  EXPECT_EQ(murmur3_of("\x21\x43\x65", 0), 0x7e4a8634u);
  EXPECT_EQ(murmur3_of("\x21\x43", 0), 0xa0f7b07au);
  EXPECT_EQ(murmur3_of("\x21", 0), 0x72661cf4u);
  EXPECT_EQ(murmur3_of("Hello, world!", 1234), 0xfaf6cdb3u);
  EXPECT_EQ(murmur3_of("The quick brown fox jumps over the lazy dog", 0),
            0x2e4ff723u);
}

TEST(murmur3_32, matches_python_mmh3_on_random_inputs) {
  for (const murmur_vector& row : mmh3_vectors) {
    const std::vector<std::uint8_t> bytes = from_hex(row.input_hex);
    EXPECT_EQ(stream::murmur3_32(bytes.data(), bytes.size(), row.seed),
              row.expected)
        << "input " << row.input_hex << " seed " << row.seed;
  }
}

TEST(murmur3_32, gives_the_same_hash_at_any_alignment) {
  const std::vector<std::uint8_t> bytes = from_hex(mmh3_vectors[19].input_hex);
  std::vector<std::uint8_t> shifted(bytes.size() + 3);
  for (std::size_t offset = 0; offset < 4; ++offset) {
    std::memcpy(shifted.data() + offset, bytes.data(), bytes.size());
    EXPECT_EQ(stream::murmur3_32(shifted.data() + offset, bytes.size(),
                                 mmh3_vectors[19].seed),
              mmh3_vectors[19].expected)
        << "offset " << offset;
  }
}

TEST(key_groups, assignment_equals_flinks_formula_for_non_negative_hashes) {
  const std::array<std::uint32_t, 8> hashes{
      0, 1, 127, 128, 129, 1'000'003, 0x7ffffffe, 0x7fffffff};
  for (auto [m, p] : flink_cases) {
    for (std::uint32_t hash : hashes) {
      EXPECT_EQ(stream::assign_key_group(hash, m),
                static_cast<key_group>(flink_compute_key_group_for_key_hash(
                    static_cast<int>(hash), static_cast<int>(m))));
    }
  }
  // Above 2^31 Flink has no counterpart; the full unsigned range is used.
  EXPECT_EQ(stream::assign_key_group(0xffffffffu, 128), 127u);
}

TEST(key_groups, ranges_equal_flinks_formula) {
  for (auto [m, p] : flink_cases) {
    for (std::uint32_t i = 0; i < p; ++i) {
      const flink_key_group_range flink =
          flink_compute_key_group_range_for_operator_index(
              static_cast<int>(m), static_cast<int>(p), static_cast<int>(i));
      const key_group_range ours = stream::range_for_subtask(m, p, i);
      EXPECT_EQ(ours.start, static_cast<std::uint32_t>(flink.start))
          << "M=" << m << " p=" << p << " i=" << i;
      EXPECT_EQ(ours.end, static_cast<std::uint32_t>(flink.end + 1))
          << "M=" << m << " p=" << p << " i=" << i;
    }
  }
}

TEST(key_groups, operator_index_equals_flinks_formula) {
  for (auto [m, p] : flink_cases) {
    for (key_group kg = 0; kg < m; ++kg) {
      ASSERT_EQ(
          stream::subtask_for_key_group(m, p, kg),
          static_cast<std::uint32_t>(flink_compute_operator_index_for_key_group(
              static_cast<int>(m), static_cast<int>(p), static_cast<int>(kg))))
          << "M=" << m << " p=" << p << " kg=" << kg;
    }
  }
}

TEST(key_groups, subtask_ranges_partition_all_key_groups_evenly) {
  for (auto [m, p] : flink_cases) {
    std::uint32_t expected_start = 0;
    std::uint32_t smallest = m;
    std::uint32_t largest = 0;
    for (std::uint32_t i = 0; i < p; ++i) {
      const key_group_range range = stream::range_for_subtask(m, p, i);
      EXPECT_EQ(range.start, expected_start) << "M=" << m << " p=" << p;
      expected_start = range.end;
      smallest = std::min(smallest, range.size());
      largest = std::max(largest, range.size());
      // Every key group of the range maps back to this subtask.
      for (key_group kg = range.start; kg < range.end; ++kg) {
        ASSERT_EQ(stream::subtask_for_key_group(m, p, kg), i);
      }
    }
    EXPECT_EQ(expected_start, m) << "M=" << m << " p=" << p;
    EXPECT_LE(largest - smallest, 1u) << "M=" << m << " p=" << p;
    EXPECT_GE(smallest, 1u) << "M=" << m << " p=" << p;
  }
}

TEST(key_group_range, is_half_open) {
  constexpr key_group_range range{3, 7};
  static_assert(range.size() == 4);
  EXPECT_FALSE(range.empty());
  EXPECT_FALSE(range.contains(2));
  EXPECT_TRUE(range.contains(3));
  EXPECT_TRUE(range.contains(6));
  EXPECT_FALSE(range.contains(7));
  EXPECT_TRUE((key_group_range{5, 5}).empty());
  EXPECT_EQ((key_group_range{5, 5}).size(), 0u);
  EXPECT_EQ(range, (key_group_range{3, 7}));
}

TEST(key_group_table, contiguous_owner_equals_subtask_for_key_group) {
  for (auto [m, p] : flink_cases) {
    auto table = key_group_table::contiguous(m, p);
    ASSERT_TRUE(table.ok()) << table.error().to_string();
    EXPECT_EQ(table->max_parallelism(), m);
    EXPECT_EQ(table->parallelism(), p);
    EXPECT_EQ(table->version(), 1u);
    for (key_group kg = 0; kg < m; ++kg) {
      ASSERT_EQ(table->owner(kg), stream::subtask_for_key_group(m, p, kg));
    }
    for (std::uint32_t i = 0; i < p; ++i) {
      const key_group_range range = stream::range_for_subtask(m, p, i);
      ASSERT_EQ(table->ranges_of(i), std::vector<key_group_range>{range});
      ASSERT_EQ(table->owned_by(i).size(), range.size());
    }
  }
}

TEST(key_group_table, contiguous_rejects_parallelism_out_of_range) {
  const auto expect_rejected = [](std::uint32_t m, std::uint32_t p) {
    auto table = key_group_table::contiguous(m, p);
    ASSERT_FALSE(table.ok()) << "M=" << m << " p=" << p;
    EXPECT_EQ(table.error().code(), stream::errc::invalid_argument);
    EXPECT_FALSE(table.error().message().empty());
  };
  expect_rejected(128, 0);
  expect_rejected(128, 129);
  expect_rejected(0, 0);
  expect_rejected(32769, 1);
  expect_rejected(1u << 20, 1);
  EXPECT_TRUE(key_group_table::contiguous(32768, 32768).ok());
  EXPECT_EQ(key_group_table::contiguous(128, 129).error().message(),
            "parallelism must be in 1..max parallelism (128), got 129");
}

TEST(key_group_table, from_owners_rejects_invalid_tables) {
  const auto expect_rejected = [](std::vector<std::uint32_t> owners,
                                  std::uint32_t p) {
    auto table = key_group_table::from_owners(std::move(owners), p, 1);
    ASSERT_FALSE(table.ok());
    EXPECT_EQ(table.error().code(), stream::errc::invalid_argument);
  };
  expect_rejected({0, 1, 2}, 2);  // owner out of range
  expect_rejected({}, 1);         // no key group
  expect_rejected({0, 0}, 0);     // no subtask
  expect_rejected({0, 0}, 3);     // more subtasks than groups
  expect_rejected(std::vector<std::uint32_t>(32769, 0), 1);  // too many
  EXPECT_EQ(key_group_table::from_owners({0, 5}, 2, 1).error().message(),
            "key group 1 is owned by subtask 5, but parallelism is 2");
}

TEST(key_group_table, ranges_of_finds_maximal_runs_in_a_non_contiguous_table) {
  //                 kg: 0  1  2  3  4  5  6  7  8  9
  std::vector<std::uint32_t> owners{1, 1, 0, 2, 2, 1, 0, 0, 0, 1};
  auto table = key_group_table::from_owners(owners, 4, 7);
  ASSERT_TRUE(table.ok()) << table.error().to_string();
  EXPECT_EQ(table->max_parallelism(), 10u);
  EXPECT_EQ(table->parallelism(), 4u);
  EXPECT_EQ(table->version(), 7u);
  EXPECT_EQ(table->ranges_of(0),
            (std::vector<key_group_range>{{2, 3}, {6, 9}}));
  EXPECT_EQ(table->ranges_of(1),
            (std::vector<key_group_range>{{0, 2}, {5, 6}, {9, 10}}));
  EXPECT_EQ(table->ranges_of(2), (std::vector<key_group_range>{{3, 5}}));
  EXPECT_TRUE(table->ranges_of(3).empty());
  EXPECT_EQ(table->owned_by(1), (std::vector<key_group>{0, 1, 5, 9}));
  EXPECT_TRUE(table->owned_by(3).empty());
  EXPECT_EQ(table->owners(), owners);
  EXPECT_EQ(table->to_string(),
            "v7 [0-1]->1 [2]->0 [3-4]->2 [5]->1 [6-8]->0 [9]->1");
}

TEST(key_group_table, owners_round_trip_and_equality_includes_the_version) {
  auto table = key_group_table::contiguous(128, 3, 4);
  ASSERT_TRUE(table.ok());
  auto rebuilt = key_group_table::from_owners(table->owners(), 3, 4);
  ASSERT_TRUE(rebuilt.ok());
  EXPECT_EQ(*rebuilt, *table);
  auto newer = key_group_table::from_owners(table->owners(), 3, 5);
  ASSERT_TRUE(newer.ok());
  EXPECT_NE(*newer, *table);
  EXPECT_EQ(table->to_string(), "v4 [0-42]->0 [43-85]->1 [86-127]->2");
}

TEST(key_group_table, route_is_the_owner_of_the_assigned_key_group) {
  auto table = key_group_table::contiguous(128, 7);
  ASSERT_TRUE(table.ok());
  for (std::uint64_t key = 0; key < 1000; ++key) {
    const std::uint32_t hash = stream::hash_key(key);
    ASSERT_EQ(table->route(hash),
              table->owner(stream::assign_key_group(hash, 128)));
  }
}

TEST(hash_key, of_a_string_is_murmur3_of_its_characters) {
  const std::string key = "user-42";
  const std::uint32_t expected = murmur3_of(key);
  EXPECT_EQ(stream::hash_key(key), expected);
  EXPECT_EQ(stream::hash_key(std::string_view{key}), expected);
  EXPECT_EQ(stream::hash_key(key.c_str()), expected);
  EXPECT_EQ(stream::hash_key("user-42"), expected);
  EXPECT_EQ(stream::hash_key(std::string{}), 0u);
  // Embedded NULs are characters of a std::string.
  const std::string with_nul{"a\0b", 3};
  EXPECT_EQ(stream::hash_key(with_nul), murmur3_of(with_nul));
}

TEST(hash_key, of_an_integer_is_murmur3_of_its_little_endian_bytes) {
  const std::uint64_t key = 0x0102030405060708ull;
  const std::array<std::uint8_t, 8> bytes{0x08, 0x07, 0x06, 0x05,
                                          0x04, 0x03, 0x02, 0x01};
  EXPECT_EQ(stream::hash_key(key),
            stream::murmur3_32(bytes.data(), bytes.size()));
  const std::int32_t negative = -2;
  const std::array<std::uint8_t, 4> negative_bytes{0xfe, 0xff, 0xff, 0xff};
  EXPECT_EQ(stream::hash_key(negative),
            stream::murmur3_32(negative_bytes.data(), negative_bytes.size()));
}

enum class color : std::uint16_t { red = 3 };

TEST(hash_key, of_an_enum_or_float_hashes_its_value_bytes) {
  EXPECT_EQ(stream::hash_key(color::red), stream::hash_key(std::uint16_t{3}));
  EXPECT_EQ(stream::hash_key(-0.0), stream::hash_key(0.0));
  EXPECT_EQ(stream::hash_key(-0.0f), stream::hash_key(0.0f));
  const double one = 1.0;
  std::array<std::uint8_t, 8> one_bytes{};
  std::memcpy(one_bytes.data(), &one, sizeof(one));
  EXPECT_EQ(stream::hash_key(one),
            stream::murmur3_32(one_bytes.data(), one_bytes.size()));
}

TEST(hash_key, spreads_sequential_u64_keys_evenly_over_128_key_groups) {
  constexpr std::uint32_t key_count = 100'000;
  constexpr std::uint32_t m = stream::default_max_parallelism;
  std::array<std::uint32_t, m> counts{};
  for (std::uint64_t key = 0; key < key_count; ++key) {
    ++counts[stream::assign_key_group(stream::hash_key(key), m)];
  }
  const double mean = static_cast<double>(key_count) / m;
  for (key_group kg = 0; kg < m; ++kg) {
    EXPECT_GE(counts[kg], 0.8 * mean) << "key group " << kg;
    EXPECT_LE(counts[kg], 1.2 * mean) << "key group " << kg;
  }
}

}  // namespace

// A key type with its own encoding, found by argument-dependent lookup; it
// stands in for stream/codec.hpp, which this test does not include.
namespace custom {

struct order_key {
  std::string region;
  std::uint32_t id = 0;
};

void encode_value(const order_key& key, std::vector<std::uint8_t>& out) {
  out.insert(out.end(), key.region.begin(), key.region.end());
  for (int shift = 0; shift < 32; shift += 8) {
    out.push_back(static_cast<std::uint8_t>(key.id >> shift));
  }
}

}  // namespace custom

namespace {

TEST(hash_key, of_another_type_hashes_what_its_encode_value_appends) {
  const custom::order_key key{"eu", 0x01020304};
  const std::array<std::uint8_t, 6> encoded{'e', 'u', 0x04, 0x03, 0x02, 0x01};
  EXPECT_EQ(stream::hash_key(key),
            stream::murmur3_32(encoded.data(), encoded.size()));
  // The scratch buffer is cleared between keys.
  EXPECT_EQ(stream::hash_key(key), stream::hash_key(key));
}

}  // namespace

namespace stream {
namespace {

TEST(key_group_assigner, equals_the_modulo_for_every_max_parallelism) {
  std::mt19937 rng{11};
  std::uint64_t checked = 0;
  for (std::uint32_t m = 1; m <= max_max_parallelism; ++m) {
    key_group_assigner assign{m};
    std::vector<std::uint32_t> hashes = {0,
                                         1,
                                         m - 1,
                                         m,
                                         m + 1,
                                         2 * m - 1,
                                         UINT32_MAX,
                                         UINT32_MAX - 1,
                                         UINT32_MAX - m};
    for (int i = 0; i < 32; ++i) hashes.push_back(rng());
    for (auto h : hashes) {
      ASSERT_EQ(assign(h), assign_key_group(h, m)) << h << " % " << m;
      ++checked;
    }
  }
  EXPECT_EQ(checked, std::uint64_t{max_max_parallelism} * 41);
}

}  // namespace
}  // namespace stream

namespace {

using stream::key_group_set;

TEST(key_group_set, normalizes_runs_to_ascending_separate_ones) {
  const key_group_set set{{{40, 50}, {0, 3}, {3, 5}, {45, 60}, {7, 7}}};
  ASSERT_EQ(set.runs().size(), 2u);
  EXPECT_EQ(set.runs()[0], (key_group_range{0, 5}));
  EXPECT_EQ(set.runs()[1], (key_group_range{40, 60}));
  EXPECT_EQ(set.size(), 25u);
  EXPECT_EQ(set.to_string(), "0-4,40-59");
  EXPECT_EQ(set, (key_group_set{{{0, 5}, {40, 60}}}));
  EXPECT_EQ(key_group_set{}.to_string(), "none");
  EXPECT_TRUE((key_group_set{key_group_range{3, 3}}.empty()));
  EXPECT_EQ(key_group_set::of({5, 6}).to_string(), "5");
}

TEST(key_group_set, answers_membership_and_overlap_like_a_bitmap) {
  std::mt19937 random{8};
  for (int round = 0; round < 200; ++round) {
    std::vector<bool> in_a(64), in_b(64);
    std::vector<key_group_range> runs_a, runs_b;
    for (int i = 0; i < 4; ++i) {
      std::uint32_t s = random() % 64, e = s + random() % 8;
      e = std::min(e, 64u);
      runs_a.push_back({s, e});
      for (auto kg = s; kg < e; ++kg) in_a[kg] = true;
      s = random() % 64;
      e = std::min(s + static_cast<std::uint32_t>(random() % 8), 64u);
      runs_b.push_back({s, e});
      for (auto kg = s; kg < e; ++kg) in_b[kg] = true;
    }
    const key_group_set a{runs_a};
    const key_group_set b{runs_b};
    bool overlap = false;
    std::uint32_t count = 0;
    for (key_group kg = 0; kg < 64; ++kg) {
      EXPECT_EQ(a.contains(kg), in_a[kg]) << a.to_string() << " " << kg;
      overlap = overlap || (in_a[kg] && in_b[kg]);
      count += in_a[kg] ? 1 : 0;
    }
    EXPECT_EQ(a.size(), count);
    EXPECT_EQ(a.intersects(b), overlap)
        << a.to_string() << " / " << b.to_string();
    EXPECT_EQ(b.intersects(a), overlap);
    std::vector<key_group> visited;
    a.for_each([&](key_group kg) { visited.push_back(kg); });
    EXPECT_EQ(visited.size(), count);
    EXPECT_TRUE(std::is_sorted(visited.begin(), visited.end()));
  }
}

TEST(key_group_set, a_tables_sets_partition_its_key_groups) {
  auto table =
      key_group_table::from_owners({0, 0, 1, 2, 1, 1, 0, 2}, 3, 4).value();
  EXPECT_EQ(table.owned_set(0).to_string(), "0-1,6");
  EXPECT_EQ(table.owned_set(1).to_string(), "2,4-5");
  EXPECT_EQ(table.owned_set(2).to_string(), "3,7");
  EXPECT_FALSE(table.owned_set(0).intersects(table.owned_set(1)));
}

}  // namespace
