#pragma once

/// Record codec: turns ordinary C++ values into bytes and back.
///
/// Wire format (every integer little-endian, no padding, no alignment):
///   scalar   := the object representation of a trivially copyable T
///               (sizeof(T) bytes); a bool is one byte, 0 or 1
///   string   := u32 byte length, bytes
///   vector   := u32 element count, elements
///   optional := u8 flag (0 = empty, 1 = present), value if present
///   product  := the elements of a pair, tuple or STREAM_FIELDS struct in
///               order, without framing
///   batch    := "STRB", u8 version (1), 3 zero bytes, u32 schema
///               fingerprint, u32 record count, u32 payload byte length,
///               payload (the records back to back)
///
/// Decoding never reads out of bounds, never trusts a length before checking
/// it against the bytes that remain, and reports bad input as
/// `errc::malformed_data` with the offset and sizes involved. Everything
/// here is thread safe as long as threads use distinct buffers.

#include <bit>
#include <cassert>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "stream/status.hpp"

namespace stream {

static_assert(std::endian::native == std::endian::little,
              "stream::codec writes the host object representation and "
              "assumes a little-endian host; add byte swapping before "
              "porting to a big-endian target");

/// An owned, growable run of encoded bytes.
using byte_buffer = std::vector<std::uint8_t>;

/// Serialises values of type `T`. Specialised below for trivially copyable
/// types, std::string, std::string_view (encode only), std::vector,
/// std::optional, std::pair, std::tuple and STREAM_FIELDS structs. Each
/// specialisation provides `min_encoded_size`, `is_bulk_copyable`,
/// `signature()`, `encode(const T&, byte_buffer&)` and
/// `decode(detail::reader&, T&)`. Decoded types must be default constructible.
template <class T>
struct codec;

namespace detail {

template <class>
inline constexpr bool dependent_false = false;

/// What STREAM_FIELDS records: the struct name and the field list as written,
/// e.g. {"order", "id, price"}.
template <class T>
struct field_names {
  std::string_view type_name;
  std::string_view field_list;
};

/// True when STREAM_FIELDS was declared for exactly `T` (not for a base).
template <class T>
concept has_stream_fields = requires(T& value, const T* tag) {
  stream_field_refs(value);
  { stream_field_names(tag) } -> std::same_as<field_names<T>>;
};

/// Bounds-checked cursor over encoded bytes that must outlive it. Not thread
/// safe. Every read checks what remains first.
class reader {
 public:
  /// Reads `bytes` from `offset` on; offsets in errors count from bytes[0].
  explicit reader(std::span<const std::uint8_t> bytes,
                  std::size_t offset = 0) noexcept
      : bytes_(bytes), offset_(offset) {
    assert(offset <= bytes.size());
  }

  std::size_t remaining() const noexcept { return bytes_.size() - offset_; }

  /// Copies the next `size` bytes to `dst`; malformed_data naming `what` if
  /// fewer remain.
  status read(void* dst, std::size_t size, std::string_view what) {
    if (size > remaining()) return truncated(what, size);
    if (size != 0) std::memcpy(dst, bytes_.data() + offset_, size);
    offset_ += size;
    return {};
  }

  /// Reads a u32 count of items of at least `min_item_size` bytes each;
  /// malformed_data unless they fit in what remains, so callers may reserve.
  status read_count(std::string_view what, std::size_t min_item_size,
                    std::uint32_t& count) {
    if (auto s = read(&count, sizeof count, what); !s.ok()) return s;
    if (std::uint64_t{count} * min_item_size > remaining()) {
      return count_too_large(what, count, min_item_size);
    }
    return {};
  }

  /// ok if every byte was consumed, else malformed_data naming `what`.
  status expect_end(std::string_view what) const;

  // Error builders, out of line to keep the fast path small.
  status truncated(std::string_view what, std::size_t size) const;
  status count_too_large(std::string_view what, std::uint32_t count,
                         std::size_t min_item_size) const;
  status invalid_flag(std::string_view what, std::uint8_t flag) const;

 private:
  std::span<const std::uint8_t> bytes_;
  std::size_t offset_ = 0;
};

inline void append_bytes(byte_buffer& out, const void* data, std::size_t size) {
  if (size == 0) return;
  const auto* bytes = static_cast<const std::uint8_t*>(data);
  out.insert(out.end(), bytes, bytes + size);
}

/// Appends a u32 length or count. Requires `count` < 2^32.
inline void append_count(byte_buffer& out, std::size_t count) {
  assert(count <= std::numeric_limits<std::uint32_t>::max());
  const auto narrow = static_cast<std::uint32_t>(count);
  append_bytes(out, &narrow, sizeof narrow);
}

/// "bool", "i32", "u64", "f64" or "raw<N>" for `kind` 'b', 'i', 'u', 'f' or
/// 'r' and `size` bytes.
std::string scalar_signature(char kind, std::size_t size);

/// "(a,b,c)" for element signatures {a, b, c}.
std::string product_signature(const std::vector<std::string>& elements);

/// "name{x:a,y:b}" for `field_list` "x, y" and element signatures {a, b}.
std::string fields_signature(std::string_view type_name,
                             std::string_view field_list,
                             const std::vector<std::string>& elements);

/// `cause` prefixed with "<item> <index> of <count>: ".
status item_error(std::string_view item, std::uint32_t index,
                  std::uint32_t count, const status& cause);

template <class... Ts>
inline constexpr std::size_t min_size_sum = (std::size_t{0} + ... +
                                             codec<Ts>::min_encoded_size);

/// Encodes the elements of tuple-like `whole` in order.
template <class Whole>
void encode_elements(const Whole& whole, byte_buffer& out) {
  std::apply(
      [&out](const auto&... e) {
        (codec<std::remove_cvref_t<decltype(e)>>::encode(e, out), ...);
      },
      whole);
}

/// Decodes into the elements of tuple-like `whole`; stops at the first error.
template <class Whole>
status decode_elements(reader& in, Whole&& whole) {
  return std::apply(
      [&in](auto&... e) {
        status s;
        (void)((s = codec<std::remove_cvref_t<decltype(e)>>::decode(in, e))
                   .ok() &&
               ...);
        return s;
      },
      std::forward<Whole>(whole));
}

/// Decodes `count` items (already checked to fit) and appends them to `out`,
/// which may hold some of them after an error.
template <class T>
status decode_items(reader& in, std::uint32_t count, std::vector<T>& out,
                    std::string_view item) {
  if constexpr (codec<T>::is_bulk_copyable) {
    const std::size_t old_size = out.size();
    out.resize(old_size + count);
    return in.read(out.data() + old_size, count * sizeof(T), item);
  } else {
    out.reserve(out.size() + count);
    for (std::uint32_t i = 0; i < count; ++i) {
      T value{};
      if (auto s = codec<T>::decode(in, value); !s.ok()) {
        return item_error(item, i, count, s);
      }
      out.push_back(std::move(value));
    }
    return {};
  }
}

/// Codec of pairs and tuples, whose elements are `Ts...`.
template <class Whole, class... Ts>
struct product_codec {
  static constexpr std::size_t min_encoded_size = min_size_sum<Ts...>;
  static constexpr bool is_bulk_copyable = false;
  static std::string signature() {
    return product_signature({codec<Ts>::signature()...});
  }
  static void encode(const Whole& value, byte_buffer& out) {
    encode_elements(value, out);
  }
  static status decode(reader& in, Whole& value) {
    return decode_elements(in, value);
  }
};

/// Codec of a STREAM_FIELDS struct; `Refs` is std::tuple<Fields&...>.
template <class T, class Refs>
struct fields_codec;

template <class T, class... Fields>
struct fields_codec<T, std::tuple<Fields&...>> {
  static constexpr std::size_t min_encoded_size =
      min_size_sum<std::remove_const_t<Fields>...>;
  static constexpr bool is_bulk_copyable = false;
  static std::string signature() {
    const field_names<T> names = stream_field_names(static_cast<T*>(nullptr));
    return fields_signature(
        names.type_name, names.field_list,
        {codec<std::remove_const_t<Fields>>::signature()...});
  }
  static void encode(const T& value, byte_buffer& out) {
    encode_elements(stream_field_refs(value), out);
  }
  static status decode(reader& in, T& value) {
    return decode_elements(in, stream_field_refs(value));
  }
};

}  // namespace detail

/// Unsupported types end up here.
template <class T>
struct codec {
  static_assert(detail::dependent_false<T>,
                "stream::codec: this type cannot be serialised. Declare its "
                "fields with STREAM_FIELDS(type_name, field1, field2, ...) at "
                "namespace scope right after the struct, or make it "
                "trivially copyable");
};

/// Arithmetic types, enums and other trivially copyable types without a
/// field list: the object representation, byte for byte. Padding bytes are
/// copied as they are, so structs with padding do not encode
/// deterministically (avoid them as hashed keys), and members are not
/// validated on decode (a bool inside a struct is taken as is); declare
/// STREAM_FIELDS to get checked, field-by-field encoding.
template <class T>
requires(std::is_trivially_copyable_v<T> &&
         !detail::has_stream_fields<T>) struct codec<T> {
  static_assert(!std::is_pointer_v<T> && !std::is_member_pointer_v<T> &&
                    !std::is_null_pointer_v<T>,
                "stream::codec: pointers mean nothing in another process; "
                "encode the pointee or an id instead");
  static constexpr std::size_t min_encoded_size = sizeof(T);
  /// A run of T is its bytes verbatim; not for bool, whose bytes are checked.
  static constexpr bool is_bulk_copyable = !std::is_same_v<T, bool>;
  static std::string signature() {
    if constexpr (std::is_enum_v<T>) {
      return "enum<" + codec<std::underlying_type_t<T>>::signature() + ">";
    } else {
      constexpr char kind = std::is_same_v<T, bool>       ? 'b'
                            : std::is_floating_point_v<T> ? 'f'
                            : !std::is_integral_v<T>      ? 'r'
                            : std::is_signed_v<T>         ? 'i'
                                                          : 'u';
      return detail::scalar_signature(kind, sizeof(T));
    }
  }
  static void encode(const T& value, byte_buffer& out) {
    detail::append_bytes(out, &value, sizeof(T));
  }
  static status decode(detail::reader& in, T& value) {
    if constexpr (std::is_same_v<T, bool>) {
      std::uint8_t byte = 0;
      if (auto s = in.read(&byte, 1, "bool"); !s.ok()) return s;
      if (byte > 1) return in.invalid_flag("bool", byte);
      value = byte == 1;
      return {};
    } else {
      return in.read(&value, sizeof(T), "fixed-size value");
    }
  }
};

/// std::string: u32 byte length, then the bytes (any bytes, NUL included).
template <>
struct codec<std::string> {
  static constexpr std::size_t min_encoded_size = 4;
  static constexpr bool is_bulk_copyable = false;
  static std::string signature() { return "str"; }
  static void encode(std::string_view value, byte_buffer& out) {
    detail::append_count(out, value.size());
    detail::append_bytes(out, value.data(), value.size());
  }
  static status decode(detail::reader& in, std::string& value) {
    std::uint32_t size = 0;
    if (auto s = in.read_count("string length", 1, size); !s.ok()) return s;
    value.resize(size);
    return in.read(value.data(), size, "string bytes");
  }
};

/// std::string_view encodes exactly like std::string, so keys can be hashed
/// without a copy. Decoding one is deleted: decode into std::string, a view
/// cannot own the bytes.
template <>
struct codec<std::string_view> : codec<std::string> {
  static status decode(detail::reader&, std::string_view&) = delete;
};

/// std::vector<T>: u32 element count, then the elements; one memcpy each way
/// when T is bulk copyable.
template <class T>
struct codec<std::vector<T>> {
  static_assert(codec<T>::min_encoded_size > 0,
                "stream::codec: vector elements must encode to at least one "
                "byte, otherwise a count cannot be checked against the input");
  static constexpr std::size_t min_encoded_size = 4;
  static constexpr bool is_bulk_copyable = false;
  static std::string signature() {
    return "vec<" + codec<T>::signature() + ">";
  }
  static void encode(const std::vector<T>& value, byte_buffer& out) {
    detail::append_count(out, value.size());
    if constexpr (codec<T>::is_bulk_copyable) {
      detail::append_bytes(out, value.data(), value.size() * sizeof(T));
    } else {
      for (const auto& element : value) codec<T>::encode(element, out);
    }
  }
  static status decode(detail::reader& in, std::vector<T>& value) {
    std::uint32_t count = 0;
    auto s = in.read_count("vector count", codec<T>::min_encoded_size, count);
    if (!s.ok()) return s;
    value.clear();
    return detail::decode_items(in, count, value, "element");
  }
};

/// std::optional<T>: u8 flag (0 empty, 1 present), then the value.
template <class T>
struct codec<std::optional<T>> {
  static constexpr std::size_t min_encoded_size = 1;
  static constexpr bool is_bulk_copyable = false;
  static std::string signature() {
    return "opt<" + codec<T>::signature() + ">";
  }
  static void encode(const std::optional<T>& value, byte_buffer& out) {
    out.push_back(value.has_value() ? 1 : 0);
    if (value.has_value()) codec<T>::encode(*value, out);
  }
  static status decode(detail::reader& in, std::optional<T>& value) {
    std::uint8_t flag = 0;
    if (auto s = in.read(&flag, 1, "optional flag"); !s.ok()) return s;
    if (flag > 1) return in.invalid_flag("optional flag", flag);
    value.reset();
    return flag == 0 ? status() : codec<T>::decode(in, value.emplace());
  }
};

/// std::variant<Ts...>: u8 alternative index, then that alternative;
/// signature "var<a,b,...>". At most 255 alternatives.
template <class... Ts>
struct codec<std::variant<Ts...>> {
  static_assert(sizeof...(Ts) > 0 && sizeof...(Ts) < 256);
  static constexpr std::size_t min_encoded_size = 1;
  static constexpr bool is_bulk_copyable = false;
  static std::string signature() {
    std::string out = "var<";
    ((out += codec<Ts>::signature() + ","), ...);
    out.back() = '>';
    return out;
  }
  static void encode(const std::variant<Ts...>& value, byte_buffer& out) {
    out.push_back(static_cast<std::uint8_t>(value.index()));
    std::visit(
        [&](const auto& alt) {
          codec<std::decay_t<decltype(alt)>>::encode(alt, out);
        },
        value);
  }
  static status decode(detail::reader& in, std::variant<Ts...>& value) {
    std::uint8_t index = 0;
    if (auto s = in.read(&index, 1, "variant index"); !s.ok()) return s;
    if (index >= sizeof...(Ts)) return in.invalid_flag("variant index", index);
    return decode_at(in, value, index, std::index_sequence_for<Ts...>{});
  }

 private:
  template <std::size_t... I>
  static status decode_at(detail::reader& in, std::variant<Ts...>& value,
                          std::size_t index, std::index_sequence<I...>) {
    status result;
    ((I == index
          ? (result =
                 codec<std::variant_alternative_t<I, std::variant<Ts...>>>::
                     decode(in, value.template emplace<I>()),
             true)
          : false) ||
     ...);
    return result;
  }
};

/// std::pair<A, B>: first then second; signature "(a,b)".
template <class A, class B>
struct codec<std::pair<A, B>> : detail::product_codec<std::pair<A, B>, A, B> {};

/// std::tuple<Ts...>: the elements in order; signature "(a,b,...)".
template <class... Ts>
struct codec<std::tuple<Ts...>>
    : detail::product_codec<std::tuple<Ts...>, Ts...> {};

/// Structs declared with STREAM_FIELDS: the listed fields in order, even if
/// the struct is trivially copyable; signature "name{field:sig,...}".
template <class T>
requires detail::has_stream_fields<T>
struct codec<T>
    : detail::fields_codec<T, decltype(stream_field_refs(std::declval<T&>()))> {
};

/// True when `codec<T>` exists: the types listed at the top, recursively.
/// Lets generic code (remote channels) offer encoding only where it compiles.
template <class T>
struct is_encodable
    : std::bool_constant<
          (std::is_trivially_copyable_v<T> && !std::is_pointer_v<T> &&
           !std::is_member_pointer_v<T> && !std::is_null_pointer_v<T>) ||
          detail::has_stream_fields<T>> {};
template <>
struct is_encodable<std::string> : std::true_type {};
template <class T>
struct is_encodable<std::vector<T>> : is_encodable<T> {};
template <class T>
struct is_encodable<std::optional<T>> : is_encodable<T> {};
template <class A, class B>
struct is_encodable<std::pair<A, B>>
    : std::bool_constant<is_encodable<A>::value && is_encodable<B>::value> {};
template <class... Ts>
struct is_encodable<std::tuple<Ts...>>
    : std::bool_constant<(is_encodable<Ts>::value && ...)> {};
template <class... Ts>
struct is_encodable<std::variant<Ts...>>
    : std::bool_constant<(is_encodable<Ts>::value && ...)> {};
template <class T>
inline constexpr bool is_encodable_v = is_encodable<T>::value;

/// FNV-1a 32-bit hash of `signature`; stable across builds and hosts.
std::uint32_t schema_fingerprint(std::string_view signature) noexcept;

/// The textual schema of `T`, e.g. "u64", "vec<str>", "(u64,i64,i64)".
template <class T>
std::string codec_signature() {
  return codec<T>::signature();
}

/// `schema_fingerprint(codec_signature<T>())`, computed once per type.
/// Thread safe.
template <class T>
std::uint32_t codec_fingerprint() {
  static const std::uint32_t fingerprint =
      schema_fingerprint(codec<T>::signature());
  return fingerprint;
}

/// Appends the encoding of `value` to `out`. Equal values of a type without
/// padding encode to equal bytes, so the result may be hashed.
template <class T>
void encode_value(const T& value, byte_buffer& out) {
  codec<T>::encode(value, out);
}

/// Decodes one `T` that must span all of `in`. On error returns
/// malformed_data and leaves `out` unchanged.
template <class T>
status decode_value(std::span<const std::uint8_t> in, T& out) {
  detail::reader reader(in);
  T value{};
  if (auto s = codec<T>::decode(reader, value); !s.ok()) return s;
  if (auto s = reader.expect_end("value"); !s.ok()) return s;
  out = std::move(value);
  return {};
}

/// Size of the batch header in bytes.
inline constexpr std::size_t batch_header_size = 20;

/// The batch format version this build writes and reads.
inline constexpr std::uint8_t batch_format_version = 1;

/// The fields of a batch header that vary.
struct batch_header {
  std::uint32_t fingerprint = 0;    ///< schema_fingerprint of the records.
  std::uint32_t record_count = 0;   ///< Records in the payload.
  std::uint32_t payload_bytes = 0;  ///< Bytes after the header.
};

/// Parses the header at the start of `in` and checks its magic, version and
/// reserved bytes (not the payload); malformed_data otherwise.
result<batch_header> parse_batch_header(std::span<const std::uint8_t> in);

namespace detail {

/// Appends a header whose payload length finish_batch fills in. Requires
/// `record_count` < 2^32.
void append_batch_header(byte_buffer& out, std::uint32_t fingerprint,
                         std::size_t record_count);

/// Patches the payload length of the header at `header_offset`. Requires a
/// payload under 4 GiB.
void finish_batch(byte_buffer& out, std::size_t header_offset);

/// Checks `header` against the reader's type and the `payload_size` bytes
/// after it: fingerprint, payload length, and that the records, each at
/// least (exactly, if `fixed_size`) `min_record_size` bytes, fit.
status check_batch(const batch_header& header, std::size_t payload_size,
                   std::uint32_t expected_fingerprint,
                   std::string (*expected_signature)(),
                   std::size_t min_record_size, bool fixed_size);

}  // namespace detail

/// Appends one batch holding `records` to `out`. Requires fewer than 2^32
/// records and a payload under 4 GiB. Bulk copyable records are one memcpy.
template <class T>
void encode_batch(std::span<const T> records, byte_buffer& out) {
  static_assert(codec<T>::min_encoded_size > 0,
                "stream::codec: records must encode to at least one byte");
  const std::size_t header_offset = out.size();
  detail::append_batch_header(out, codec_fingerprint<T>(), records.size());
  if constexpr (codec<T>::is_bulk_copyable) {
    detail::append_bytes(out, records.data(), records.size_bytes());
  } else {
    for (const T& record : records) codec<T>::encode(record, out);
  }
  detail::finish_batch(out, header_offset);
}

/// Same as the span overload; lets `encode_batch(vector, out)` deduce T.
template <class T>
void encode_batch(const std::vector<T>& records, byte_buffer& out) {
  encode_batch(std::span<const T>(records), out);
}

/// Decodes the batch that spans all of `in` and appends its records to
/// `out`. On any error returns malformed_data with a precise message and
/// leaves the elements of `out` as they were (its capacity may have grown).
template <class T>
status decode_batch(std::span<const std::uint8_t> in, std::vector<T>& out) {
  static_assert(codec<T>::min_encoded_size > 0,
                "stream::codec: records must encode to at least one byte");
  const result<batch_header> header = parse_batch_header(in);
  if (!header.ok()) return header.error();
  detail::reader payload(in, batch_header_size);
  status s =
      detail::check_batch(*header, payload.remaining(), codec_fingerprint<T>(),
                          &codec<T>::signature, codec<T>::min_encoded_size,
                          codec<T>::is_bulk_copyable);
  if (!s.ok()) return s;
  const std::size_t old_size = out.size();
  s = detail::decode_items(payload, header->record_count, out, "record");
  if (s.ok()) s = payload.expect_end("records");
  if (!s.ok()) {
    out.erase(out.begin() + static_cast<std::ptrdiff_t>(old_size), out.end());
  }
  return s;
}

}  // namespace stream

// STREAM_FIELDS helpers: STREAM_DETAIL_REFS(a, b) expands to value.a, value.b
// for any number of fields (rescanned by the nested EXPAND macros).
#define STREAM_DETAIL_EXPAND(...) \
  STREAM_DETAIL_EXPAND3(          \
      STREAM_DETAIL_EXPAND3(STREAM_DETAIL_EXPAND3(__VA_ARGS__)))
#define STREAM_DETAIL_EXPAND3(...) \
  STREAM_DETAIL_EXPAND2(           \
      STREAM_DETAIL_EXPAND2(STREAM_DETAIL_EXPAND2(__VA_ARGS__)))
#define STREAM_DETAIL_EXPAND2(...) \
  STREAM_DETAIL_EXPAND1(           \
      STREAM_DETAIL_EXPAND1(STREAM_DETAIL_EXPAND1(__VA_ARGS__)))
#define STREAM_DETAIL_EXPAND1(...) __VA_ARGS__
#define STREAM_DETAIL_PARENS ()
#define STREAM_DETAIL_REFS(...) \
  __VA_OPT__(STREAM_DETAIL_EXPAND(STREAM_DETAIL_REFS_STEP(__VA_ARGS__)))
#define STREAM_DETAIL_REFS_STEP(field, ...) \
  value.field __VA_OPT__(                   \
      , STREAM_DETAIL_REFS_AGAIN STREAM_DETAIL_PARENS(__VA_ARGS__))
#define STREAM_DETAIL_REFS_AGAIN() STREAM_DETAIL_REFS_STEP

/// Declares the serialised fields of struct `type_name`, in wire order:
/// `STREAM_FIELDS(order, id, price, tags);` at namespace scope right after
/// the struct, in the struct's namespace (it is found by ADL). Lists public
/// data members (1 to 40). The struct name and field names are part of the
/// codec signature, so renaming or reordering them changes the fingerprint.
#define STREAM_FIELDS(type_name, ...)                                      \
  [[maybe_unused]] inline auto stream_field_refs(type_name& value) {       \
    return ::std::tie(STREAM_DETAIL_REFS(__VA_ARGS__));                    \
  }                                                                        \
  [[maybe_unused]] inline auto stream_field_refs(const type_name& value) { \
    return ::std::tie(STREAM_DETAIL_REFS(__VA_ARGS__));                    \
  }                                                                        \
  [[maybe_unused]] constexpr ::stream::detail::field_names<type_name>      \
  stream_field_names(const type_name*) {                                   \
    return {#type_name, #__VA_ARGS__};                                     \
  }                                                                        \
  static_assert(::std::is_class_v<type_name>,                              \
                "STREAM_FIELDS takes a struct: " #type_name)
