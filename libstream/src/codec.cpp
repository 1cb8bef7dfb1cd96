#include "stream/codec.hpp"

#include <algorithm>
#include <array>

namespace stream {
namespace {

constexpr std::array<std::uint8_t, 4> batch_magic = {'S', 'T', 'R', 'B'};
constexpr std::size_t fingerprint_offset = 8;
constexpr std::size_t payload_length_offset = 16;

status malformed(std::string message) {
  return {errc::malformed_data, std::move(message)};
}

std::string hex_bytes(std::span<const std::uint8_t> bytes) {
  constexpr std::string_view digits = "0123456789abcdef";
  std::string out;
  for (std::uint8_t byte : bytes) {
    if (!out.empty()) out += ' ';
    out += digits[byte >> 4];
    out += digits[byte & 0xf];
  }
  return out;
}

std::string hex32(std::uint32_t value) {
  std::string out = "0x";
  for (int shift = 28; shift >= 0; shift -= 4) {
    out += "0123456789abcdef"[(value >> shift) & 0xf];
  }
  return out;
}

std::uint32_t load_u32(std::span<const std::uint8_t> in, std::size_t offset) {
  std::uint32_t value = 0;
  std::memcpy(&value, in.data() + offset, sizeof value);
  return value;
}

void store_u32(byte_buffer& out, std::size_t offset, std::uint32_t value) {
  std::memcpy(out.data() + offset, &value, sizeof value);
}

std::string_view trim(std::string_view text) {
  while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
  while (!text.empty() && text.back() == ' ') text.remove_suffix(1);
  return text;
}

}  // namespace

std::uint32_t schema_fingerprint(std::string_view signature) noexcept {
  std::uint32_t hash = 2166136261u;  // FNV-1a offset basis.
  for (char c : signature) {
    hash ^= static_cast<std::uint8_t>(c);
    hash *= 16777619u;  // FNV-1a prime.
  }
  return hash;
}

result<batch_header> parse_batch_header(std::span<const std::uint8_t> in) {
  if (in.size() < batch_header_size) {
    return malformed("truncated batch header: got " +
                     std::to_string(in.size()) + " bytes, need " +
                     std::to_string(batch_header_size));
  }
  if (!std::equal(batch_magic.begin(), batch_magic.end(), in.begin())) {
    return malformed("bad batch magic: expected \"STRB\" (" +
                     hex_bytes(batch_magic) + "), got " +
                     hex_bytes(in.first(4)));
  }
  if (in[4] != batch_format_version) {
    return malformed("unsupported batch format version " +
                     std::to_string(in[4]) + "; this build reads version " +
                     std::to_string(batch_format_version));
  }
  if (in[5] != 0 || in[6] != 0 || in[7] != 0) {
    return malformed("reserved batch header bytes must be zero, got " +
                     hex_bytes(in.subspan(5, 3)));
  }
  return batch_header{load_u32(in, fingerprint_offset), load_u32(in, 12),
                      load_u32(in, payload_length_offset)};
}

namespace detail {

status reader::expect_end(std::string_view what) const {
  if (remaining() == 0) return {};
  return malformed(std::to_string(remaining()) + " trailing bytes after the " +
                   std::string(what) + " (consumed " + std::to_string(offset_) +
                   " of " + std::to_string(bytes_.size()) + ")");
}

status reader::truncated(std::string_view what, std::size_t size) const {
  return malformed("truncated input: " + std::string(what) + " needs " +
                   std::to_string(size) + " bytes at offset " +
                   std::to_string(offset_) + " but only " +
                   std::to_string(remaining()) + " remain");
}

status reader::count_too_large(std::string_view what, std::uint32_t count,
                               std::size_t min_item_size) const {
  // Called right after the u32 count was consumed.
  return malformed(
      std::string(what) + " " + std::to_string(count) + " at offset " +
      std::to_string(offset_ - 4) + " needs at least " +
      std::to_string(std::uint64_t{count} * min_item_size) +
      " bytes but only " + std::to_string(remaining()) + " remain");
}

status reader::invalid_flag(std::string_view what, std::uint8_t flag) const {
  // Called right after the flag byte was consumed.
  return malformed(std::string(what) + " at offset " +
                   std::to_string(offset_ - 1) + " must be 0 or 1, got " +
                   std::to_string(flag));
}

std::string scalar_signature(char kind, std::size_t size) {
  if (kind == 'b') return "bool";
  if (kind == 'r') return "raw<" + std::to_string(size) + ">";
  assert(kind == 'i' || kind == 'u' || kind == 'f');
  return kind + std::to_string(size * 8);
}

std::string product_signature(const std::vector<std::string>& elements) {
  std::string out = "(";
  for (const std::string& element : elements) {
    if (out.size() > 1) out += ',';
    out += element;
  }
  return out + ")";
}

std::string fields_signature(std::string_view type_name,
                             std::string_view field_list,
                             const std::vector<std::string>& elements) {
  std::string out = std::string(trim(type_name)) + "{";
  for (std::size_t i = 0; i < elements.size(); ++i) {
    const std::size_t comma = field_list.find(',');
    if (i != 0) out += ',';
    out += trim(field_list.substr(0, comma));
    out += ':';
    out += elements[i];
    field_list.remove_prefix(comma == std::string_view::npos ? field_list.size()
                                                             : comma + 1);
  }
  assert(trim(field_list).empty());  // STREAM_FIELDS names every element.
  return out + "}";
}

void append_batch_header(byte_buffer& out, std::uint32_t fingerprint,
                         std::size_t record_count) {
  append_bytes(out, batch_magic.data(), batch_magic.size());
  const std::array<std::uint8_t, 4> version_and_reserved = {
      batch_format_version, 0, 0, 0};
  append_bytes(out, version_and_reserved.data(), version_and_reserved.size());
  append_bytes(out, &fingerprint, sizeof fingerprint);
  append_count(out, record_count);
  append_count(out, 0);  // Payload length, patched by finish_batch.
}

void finish_batch(byte_buffer& out, std::size_t header_offset) {
  const std::size_t payload = out.size() - header_offset - batch_header_size;
  assert(payload <= std::numeric_limits<std::uint32_t>::max());
  store_u32(out, header_offset + payload_length_offset,
            static_cast<std::uint32_t>(payload));
}

status check_batch(const batch_header& header, std::size_t payload_size,
                   std::uint32_t expected_fingerprint,
                   std::string (*expected_signature)(),
                   std::size_t min_record_size, bool fixed_size) {
  if (header.fingerprint != expected_fingerprint) {
    return malformed(
        "schema fingerprint mismatch: the batch was written with " +
        hex32(header.fingerprint) + " but the reader expects " +
        hex32(expected_fingerprint) + " (signature \"" + expected_signature() +
        "\")");
  }
  if (header.payload_bytes > payload_size) {
    return malformed("truncated batch payload: header says " +
                     std::to_string(header.payload_bytes) + " bytes, got " +
                     std::to_string(payload_size));
  }
  if (header.payload_bytes < payload_size) {
    return malformed(std::to_string(payload_size - header.payload_bytes) +
                     " trailing bytes after the " +
                     std::to_string(header.payload_bytes) +
                     "-byte batch payload");
  }
  const std::uint64_t needed =
      std::uint64_t{header.record_count} * min_record_size;
  if (needed > payload_size) {
    return malformed("record count " + std::to_string(header.record_count) +
                     " is implausible for a " + std::to_string(payload_size) +
                     "-byte payload: each record needs at least " +
                     std::to_string(min_record_size) + " bytes");
  }
  if (fixed_size && needed != payload_size) {
    return malformed("batch payload of " + std::to_string(payload_size) +
                     " bytes does not hold exactly " +
                     std::to_string(header.record_count) + " records of " +
                     std::to_string(min_record_size) + " bytes");
  }
  return {};
}

status item_error(std::string_view item, std::uint32_t index,
                  std::uint32_t count, const status& cause) {
  return malformed(std::string(item) + " " + std::to_string(index) + " of " +
                   std::to_string(count) + ": " + cause.message());
}

}  // namespace detail
}  // namespace stream
