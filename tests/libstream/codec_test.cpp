#include "stream/codec.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include "stream/data_stream.hpp"

namespace shop {

enum class side : std::uint8_t { buy, sell };

struct price {
  std::int64_t units = 0;
  std::int32_t nanos = 0;
  bool operator==(const price&) const = default;
};
STREAM_FIELDS(price, units, nanos);

struct order {
  std::uint64_t id = 0;
  std::string symbol;
  side direction = side::buy;
  price limit;
  std::optional<std::string> note;
  std::vector<std::uint32_t> fills;
  bool active = false;
  bool operator==(const order&) const = default;
};
STREAM_FIELDS(order, id, symbol, direction, limit, note, fills, active);

/// Trivially copyable and without a field list: encoded by copy.
struct point {
  double x = 0;
  double y = 0;
  bool operator==(const point&) const = default;
};

/// Trivially copyable with padding, but with a field list: field by field.
struct packed {
  std::uint8_t tag = 0;
  std::uint32_t value = 0;
  bool operator==(const packed&) const = default;
};
STREAM_FIELDS(packed, tag, value);

struct wide {
  int f1 = 1, f2 = 2, f3 = 3, f4 = 4, f5 = 5, f6 = 6, f7 = 7, f8 = 8;
  int f9 = 9, f10 = 10, f11 = 11, f12 = 12, f13 = 13, f14 = 14, f15 = 15;
  std::string f16 = "sixteen";
  bool operator==(const wide&) const = default;
};
STREAM_FIELDS(wide, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13, f14,
              f15, f16);

}  // namespace shop

namespace {

using stream::byte_buffer;
using stream::errc;
using bytes_view = std::span<const std::uint8_t>;

template <class T>
T round_trip(const T& value) {
  byte_buffer bytes;
  stream::encode_value(value, bytes);
  T decoded{};
  const stream::status s = stream::decode_value(bytes, decoded);
  EXPECT_TRUE(s.ok()) << s.to_string();
  return decoded;
}

template <class T>
void expect_round_trip(const T& value) {
  EXPECT_EQ(round_trip(value), value);
}

shop::order make_order(std::uint64_t i) {
  shop::order o;
  o.id = i;
  o.symbol = "SYM" + std::to_string(i % 97);
  o.direction = i % 2 == 0 ? shop::side::buy : shop::side::sell;
  o.limit = {static_cast<std::int64_t>(i) * 3, -static_cast<std::int32_t>(i)};
  if (i % 3 == 0) o.note = std::string(i % 5, '\0');
  o.fills.assign(i % 4, static_cast<std::uint32_t>(i));
  o.active = i % 5 == 0;
  return o;
}

std::vector<shop::order> make_orders(std::size_t count) {
  std::vector<shop::order> out;
  for (std::size_t i = 0; i < count; ++i) out.push_back(make_order(i));
  return out;
}

template <class T>
byte_buffer batch_of(const std::vector<T>& records) {
  byte_buffer out;
  stream::encode_batch(records, out);
  return out;
}

/// Decodes `bytes` as a batch of T into a vector holding a sentinel record;
/// expects malformed_data with `needle` in its message and the vector
/// unchanged.
template <class T>
void expect_rejected(bytes_view bytes, const std::string& needle) {
  std::vector<T> out(1);
  const stream::status s = stream::decode_batch(bytes, out);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), errc::malformed_data);
  EXPECT_NE(s.message().find(needle), std::string::npos) << s.message();
  EXPECT_EQ(out, std::vector<T>(1));
}

void put_u32(byte_buffer& bytes, std::size_t offset, std::uint32_t value) {
  std::memcpy(bytes.data() + offset, &value, sizeof value);
}

TEST(codec, round_trips_integers_of_every_width) {
  expect_round_trip(std::numeric_limits<std::int8_t>::min());
  expect_round_trip(std::numeric_limits<std::uint8_t>::max());
  expect_round_trip(std::numeric_limits<std::int16_t>::min());
  expect_round_trip(std::numeric_limits<std::uint16_t>::max());
  expect_round_trip(std::numeric_limits<std::int32_t>::min());
  expect_round_trip(std::numeric_limits<std::uint32_t>::max());
  expect_round_trip(std::numeric_limits<std::int64_t>::min());
  expect_round_trip(std::numeric_limits<std::uint64_t>::max());
  expect_round_trip('x');
}

TEST(codec, round_trips_floating_point_bool_and_enums) {
  expect_round_trip(3.25);
  expect_round_trip(-0.0f);
  expect_round_trip(std::numeric_limits<double>::infinity());
  EXPECT_TRUE(std::isnan(round_trip(std::nan(""))));
  expect_round_trip(true);
  expect_round_trip(false);
  expect_round_trip(shop::side::sell);
  expect_round_trip(errc::malformed_data);
}

TEST(codec, round_trips_strings_including_empty_and_binary) {
  expect_round_trip(std::string());
  expect_round_trip(std::string("hello"));
  expect_round_trip(std::string("a\0b\0\0c\xff", 7));
  expect_round_trip(std::string(100'000, 'z'));
}

TEST(codec, round_trips_pairs_and_tuples) {
  expect_round_trip(std::pair<int, std::string>(7, "seven"));
  expect_round_trip(std::tuple<std::uint64_t, std::int64_t, std::int64_t>(
      1, -2, std::numeric_limits<std::int64_t>::max()));
  expect_round_trip(std::tuple<std::string, std::optional<int>, bool>(
      "", std::nullopt, true));
}

TEST(codec, round_trips_variants_and_rejects_a_bad_index) {
  using v = std::variant<std::int64_t, std::string, std::pair<int, double>>;
  expect_round_trip(v{std::int64_t{-5}});
  expect_round_trip(v{std::string("side b")});
  expect_round_trip(v{std::pair<int, double>(3, 0.5)});
  expect_round_trip(std::vector<v>{v{std::int64_t{1}}, v{std::string("x")}});
  EXPECT_EQ(stream::codec<v>::signature(), "var<i64,str,(i32,f64)>");
  // Alternative index 3 of 3: rejected, not read out of bounds.
  auto bytes = batch_of(std::vector<v>{v{std::int64_t{9}}});
  bytes[stream::batch_header_size] = 3;
  expect_rejected<v>(bytes, "variant index");
}

TEST(codec, round_trips_vectors) {
  expect_round_trip(std::vector<std::uint64_t>());
  expect_round_trip(std::vector<std::uint64_t>{1, 2, 3});
  expect_round_trip(std::vector<std::string>{"", "a", std::string(3, '\0')});
  expect_round_trip(std::vector<std::vector<int>>{{}, {1}, {2, 3}});
  expect_round_trip(std::vector<bool>{true, false, true});
  expect_round_trip(std::vector<shop::point>{{1, 2}, {3, 4}});
}

TEST(codec, round_trips_optionals) {
  expect_round_trip(std::optional<std::uint32_t>());
  expect_round_trip(std::optional<std::uint32_t>(42));
  expect_round_trip(std::optional<std::string>(""));
  expect_round_trip(std::optional<std::vector<int>>(std::vector<int>{5}));
}

TEST(codec, round_trips_nested_structs_with_stream_fields) {
  expect_round_trip(make_order(3));
  expect_round_trip(make_order(10));
  expect_round_trip(shop::wide{});
  expect_round_trip(std::vector<shop::order>{make_order(1), make_order(2)});
}

TEST(codec, copies_trivially_copyable_structs_without_fields) {
  const shop::point p{1.5, -2.5};
  byte_buffer bytes;
  stream::encode_value(p, bytes);
  byte_buffer representation(sizeof p);
  std::memcpy(representation.data(), &p, sizeof p);
  EXPECT_EQ(bytes, representation);
  expect_round_trip(p);
}

TEST(codec, encodes_declared_fields_one_by_one_even_if_trivially_copyable) {
  static_assert(std::is_trivially_copyable_v<shop::packed>);
  byte_buffer bytes;
  stream::encode_value(shop::packed{7, 0x01020304}, bytes);
  EXPECT_EQ(bytes, (byte_buffer{7, 4, 3, 2, 1}));
  expect_round_trip(shop::packed{7, 0x01020304});
}

TEST(codec, writes_little_endian_lengths_and_flags_for_strings_and_views) {
  byte_buffer bytes;
  stream::encode_value(std::string("ab"), bytes);
  stream::encode_value(std::optional<int>(), bytes);
  EXPECT_EQ(bytes, (byte_buffer{2, 0, 0, 0, 'a', 'b', 0}));
  byte_buffer from_view;
  stream::encode_value(std::string_view("ab"), from_view);
  EXPECT_EQ(from_view, byte_buffer(bytes.begin(), bytes.end() - 1));
}

TEST(codec, describes_each_schema_with_a_signature) {
  using stream::codec_signature;
  EXPECT_EQ(codec_signature<std::uint64_t>(), "u64");
  EXPECT_EQ(codec_signature<std::int64_t>(), "i64");
  EXPECT_EQ(codec_signature<double>(), "f64");
  EXPECT_EQ(codec_signature<bool>(), "bool");
  EXPECT_EQ(codec_signature<shop::side>(), "enum<u8>");
  EXPECT_EQ(codec_signature<std::vector<std::string>>(), "vec<str>");
  EXPECT_EQ(codec_signature<std::optional<std::uint32_t>>(), "opt<u32>");
  EXPECT_EQ((codec_signature<
                std::tuple<std::uint64_t, std::int64_t, std::int64_t>>()),
            "(u64,i64,i64)");
  EXPECT_EQ((codec_signature<std::pair<std::string, int>>()), "(str,i32)");
  EXPECT_EQ(codec_signature<shop::point>(), "raw<16>");
  EXPECT_EQ(codec_signature<shop::price>(), "price{units:i64,nanos:i32}");
}

TEST(codec, fingerprints_signatures_with_fnv1a) {
  EXPECT_EQ(stream::schema_fingerprint(""), 0x811c9dc5u);
  EXPECT_EQ(stream::schema_fingerprint("a"), 0xe40c292cu);
  EXPECT_EQ(stream::codec_fingerprint<std::uint64_t>(),
            stream::schema_fingerprint("u64"));
}

TEST(codec, rejects_values_with_trailing_or_missing_bytes) {
  byte_buffer bytes;
  stream::encode_value(std::string("abc"), bytes);
  std::string out = "unchanged";
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_EQ(stream::decode_value(bytes_view(bytes).first(n), out).code(),
              errc::malformed_data);
  }
  bytes.push_back(0);
  EXPECT_NE(stream::decode_value(bytes, out).message().find("1 trailing"),
            std::string::npos);
  EXPECT_EQ(out, "unchanged");
}

TEST(codec, rejects_flags_other_than_zero_or_one) {
  bool flag = false;
  EXPECT_EQ(stream::decode_value(byte_buffer{2}, flag).code(),
            errc::malformed_data);
  std::optional<int> maybe;
  const stream::status s = stream::decode_value(byte_buffer{9}, maybe);
  EXPECT_NE(s.message().find("must be 0 or 1, got 9"), std::string::npos);
  const bool flags[] = {true, false};
  byte_buffer bools;
  stream::encode_batch(std::span<const bool>(flags), bools);
  bools.back() = 2;  // Batches of bool are checked byte by byte, not copied.
  expect_rejected<bool>(bools, "record 1 of 2: bool at offset 21");
}

TEST(codec, round_trips_a_batch_of_ten_thousand_records) {
  const std::vector<shop::order> records = make_orders(10'000);
  const byte_buffer bytes = batch_of(records);
  std::vector<shop::order> decoded;
  const stream::status s = stream::decode_batch(bytes, decoded);
  ASSERT_TRUE(s.ok()) << s.to_string();
  EXPECT_EQ(decoded, records);
}

TEST(codec, copies_trivially_copyable_batches_verbatim) {
  std::vector<shop::point> records(10'000);
  for (std::size_t i = 0; i < records.size(); ++i)
    records[i] = {static_cast<double>(i), 2.0};
  const byte_buffer bytes = batch_of(records);
  byte_buffer payload(sizeof(shop::point) * records.size());
  std::memcpy(payload.data(), records.data(), payload.size());
  EXPECT_EQ(byte_buffer(bytes.begin() + stream::batch_header_size, bytes.end()),
            payload);
  std::vector<shop::point> decoded;
  ASSERT_TRUE(stream::decode_batch(bytes, decoded).ok());
  EXPECT_EQ(decoded, records);
}

TEST(codec, round_trips_an_empty_batch) {
  const byte_buffer bytes = batch_of(std::vector<std::string>{});
  EXPECT_EQ(bytes.size(), stream::batch_header_size);
  std::vector<std::string> decoded{"kept"};
  ASSERT_TRUE(stream::decode_batch(bytes, decoded).ok());
  EXPECT_EQ(decoded, std::vector<std::string>{"kept"});
}

TEST(codec, writes_the_documented_batch_header) {
  byte_buffer bytes = {0xaa};  // encode_batch appends.
  stream::encode_batch(std::vector<std::uint16_t>{1, 2, 3}, bytes);
  const std::uint32_t fp = stream::schema_fingerprint("u16");
  byte_buffer expected = {0xaa, 'S', 'T', 'R', 'B', 1, 0, 0, 0};
  for (std::uint32_t word : {fp, 3u, 6u}) {
    for (int shift = 0; shift < 32; shift += 8) {
      expected.push_back(static_cast<std::uint8_t>(word >> shift));
    }
  }
  expected.insert(expected.end(), {1, 0, 2, 0, 3, 0});
  EXPECT_EQ(bytes, expected);
  const auto header = stream::parse_batch_header(bytes_view(bytes).subspan(1));
  ASSERT_TRUE(header.ok());
  EXPECT_EQ(header->record_count, 3u);
}

TEST(codec, rejects_every_truncation_of_a_batch) {
  const byte_buffer orders = batch_of(make_orders(40));
  for (std::size_t n = 0; n < orders.size(); ++n) {
    expect_rejected<shop::order>(bytes_view(orders).first(n), "truncated");
  }
  const byte_buffer points = batch_of(std::vector<shop::point>(5));
  for (std::size_t n = 0; n < points.size(); ++n) {
    expect_rejected<shop::point>(bytes_view(points).first(n), "truncated");
  }
}

TEST(codec, rejects_bad_magic_version_and_reserved_bytes) {
  const byte_buffer good = batch_of(make_orders(2));
  byte_buffer bytes = good;
  bytes[0] = 'X';
  expect_rejected<shop::order>(bytes, "bad batch magic");
  bytes = good;
  bytes[4] = 2;
  expect_rejected<shop::order>(bytes, "unsupported batch format version 2");
  bytes = good;
  bytes[6] = 1;
  expect_rejected<shop::order>(bytes, "reserved batch header bytes");
}

TEST(codec, rejects_a_batch_of_another_type) {
  const byte_buffer bytes = batch_of(std::vector<std::uint64_t>{1, 2});
  expect_rejected<std::int64_t>(bytes, "schema fingerprint mismatch");
  expect_rejected<std::int64_t>(bytes, "\"i64\"");
  expect_rejected<shop::order>(bytes, "price{units:i64,nanos:i32}");
}

TEST(codec, rejects_a_huge_string_length) {
  byte_buffer bytes = batch_of(std::vector<std::string>{"abc"});
  put_u32(bytes, stream::batch_header_size, 0xffffffffu);
  expect_rejected<std::string>(bytes, "string length 4294967295");
}

TEST(codec, rejects_a_huge_vector_count) {
  byte_buffer bytes = batch_of(std::vector<std::vector<std::string>>{{"a"}});
  put_u32(bytes, stream::batch_header_size, 0x10000000u);
  expect_rejected<std::vector<std::string>>(bytes, "vector count 268435456");
}

TEST(codec, rejects_a_huge_record_count) {
  byte_buffer bytes = batch_of(make_orders(3));
  put_u32(bytes, 12, 0xffffffffu);
  expect_rejected<shop::order>(bytes, "record count 4294967295");
  byte_buffer points = batch_of(std::vector<shop::point>(3));
  put_u32(points, 12, 2);
  expect_rejected<shop::point>(points, "exactly 2 records");
}

TEST(codec, rejects_trailing_garbage) {
  byte_buffer bytes = batch_of(make_orders(3));
  bytes.push_back(0);
  expect_rejected<shop::order>(bytes, "1 trailing bytes after the");
  // Garbage counted in the payload length but not part of any record.
  put_u32(bytes, 16, static_cast<std::uint32_t>(bytes.size() - 20));
  expect_rejected<shop::order>(bytes, "trailing bytes after the records");
}

/// Decodes `bytes` as a batch of T: it must never crash, must leave the
/// output alone on error, and may only succeed if re-encoding gives back
/// exactly `bytes` (the encoding is canonical for these types).
template <class T>
void expect_safe_decode(const byte_buffer& bytes) {
  std::vector<T> out(1);
  const stream::status s = stream::decode_batch(bytes, out);
  if (!s.ok()) {
    EXPECT_EQ(s.code(), errc::malformed_data);
    EXPECT_EQ(out, std::vector<T>(1));
    return;
  }
  out.erase(out.begin());
  EXPECT_EQ(batch_of(out), bytes);
}

byte_buffer random_bytes(std::mt19937& rng, std::size_t size) {
  std::uniform_int_distribution<int> byte(0, 255);
  byte_buffer out(size);
  for (auto& b : out) b = static_cast<std::uint8_t>(byte(rng));
  return out;
}

TEST(codec, survives_random_garbage) {
  std::mt19937 rng(20240611);  // Fixed seed: failures must reproduce.
  std::uniform_int_distribution<std::size_t> size(0, 200);
  for (int i = 0; i < 2'000; ++i) {
    byte_buffer bytes = random_bytes(rng, size(rng));
    if (i % 2 == 0) {
      // A valid header with random count and length, so the payload checks
      // run; small counts every other time so some records decode.
      byte_buffer header = batch_of(std::vector<shop::order>{});
      put_u32(header, 12,
              i % 4 == 0 ? static_cast<std::uint32_t>(rng()) % 4
                         : static_cast<std::uint32_t>(rng()));
      put_u32(header, 16,
              i % 3 == 0 ? static_cast<std::uint32_t>(rng())
                         : static_cast<std::uint32_t>(bytes.size()));
      bytes.insert(bytes.begin(), header.begin(), header.end());
    }
    expect_safe_decode<shop::order>(bytes);
    expect_safe_decode<shop::point>(bytes);
  }
}

TEST(codec, survives_mutated_batches) {
  std::mt19937 rng(7);
  const byte_buffer good = batch_of(make_orders(6));
  std::uniform_int_distribution<std::size_t> pos(0, good.size() - 1);
  for (int i = 0; i < 2'000; ++i) {
    byte_buffer bytes = good;
    for (int flips = 1 + i % 3; flips > 0; --flips) {
      bytes[pos(rng)] = static_cast<std::uint8_t>(rng());
    }
    expect_safe_decode<shop::order>(bytes);
  }
}

struct no_codec {
  std::string text;
};

TEST(codec, is_encodable_tells_which_types_have_a_codec) {
  // Compile-time facts; the remote-channel glue relies on them.
  static_assert(stream::is_encodable_v<std::uint64_t>);
  static_assert(stream::is_encodable_v<std::string>);
  static_assert(
      stream::is_encodable_v<std::vector<std::pair<std::string, double>>>);
  static_assert(
      stream::is_encodable_v<std::optional<std::tuple<int, std::string>>>);
  static_assert(!stream::is_encodable_v<no_codec>);
  static_assert(!stream::is_encodable_v<std::vector<no_codec>>);
  static_assert(!stream::is_encodable_v<int*>);
  // And the type glue: a batch through encode and decode comes back equal;
  // a type without a codec has neither.
  auto ops = stream::type_ops_for<std::pair<std::string, double>>();
  ASSERT_TRUE(ops->encode && ops->decode);
  stream::runtime::batch<std::pair<std::string, double>> in{
      {{"a", 1.5}, {"bb", -2.0}, {"", 0.0}}};
  std::vector<std::uint8_t> bytes;
  ops->encode(in, bytes);
  auto out = ops->decode(bytes);
  ASSERT_TRUE(out.ok()) << out.error().message();
  const auto& back = static_cast<
      const stream::runtime::batch<std::pair<std::string, double>>&>(**out);
  EXPECT_EQ(back.records, in.records);
  bytes[bytes.size() / 2] ^= 0xFF;  // inside the payload
  bytes.resize(bytes.size() - 1);   // and one byte short
  EXPECT_FALSE(ops->decode(bytes).ok());
  auto none = stream::type_ops_for<no_codec>();
  EXPECT_FALSE(none->encode);
  EXPECT_FALSE(none->decode);
}

}  // namespace
