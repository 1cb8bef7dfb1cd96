// CRC32C (Castagnoli, reflected polynomial 0x82F63B78), as used by iSCSI,
// ext4 and LevelDB: a slice-by-8 table implementation, and the SSE4.2 crc32
// instruction when the CPU has it. The project is compiled without
// -msse4.2, so the hardware path is a separate function compiled for that
// target and chosen at run time.

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "stream/checkpoint/storage.hpp"

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

namespace stream::checkpoint {
namespace detail {

// The definitions below are reached by the tests through their own
// declarations, so that both paths can be compared on one machine; they are
// not part of the public API.
std::uint32_t crc32c_software(const std::uint8_t* data, std::size_t size,
                              std::uint32_t crc) noexcept;
std::uint32_t crc32c_sse42(const std::uint8_t* data, std::size_t size,
                           std::uint32_t crc) noexcept;
bool crc32c_sse42_supported() noexcept;

namespace {

static_assert(std::endian::native == std::endian::little,
              "the slice-by-8 loop reads 8 bytes as a little-endian word");

constexpr std::uint32_t polynomial = 0x82F63B78;

// tables[0] is the byte-at-a-time table; tables[k][b] is the CRC of byte b
// followed by k zero bytes, so eight table lookups advance eight bytes.
using crc_tables = std::array<std::array<std::uint32_t, 256>, 8>;

constexpr crc_tables make_tables() {
  crc_tables tables{};
  for (std::uint32_t b = 0; b < 256; ++b) {
    std::uint32_t crc = b;
    for (int bit = 0; bit < 8; ++bit) {
      crc = (crc >> 1) ^ ((crc & 1) != 0 ? polynomial : 0);
    }
    tables[0][b] = crc;
  }
  for (std::size_t k = 1; k < 8; ++k) {
    for (std::size_t b = 0; b < 256; ++b) {
      const std::uint32_t prev = tables[k - 1][b];
      tables[k][b] = (prev >> 8) ^ tables[0][prev & 0xFF];
    }
  }
  return tables;
}

constexpr crc_tables tables = make_tables();

// Byte 0x80 shifts its bit out on the eighth step: exactly the polynomial.
static_assert(tables[0][0x80] == polynomial, "table generation");

}  // namespace

std::uint32_t crc32c_software(const std::uint8_t* data, std::size_t size,
                              std::uint32_t crc) noexcept {
  std::uint32_t c = ~crc;
  while (size >= 8) {
    std::uint64_t word = 0;
    std::memcpy(&word, data, sizeof(word));
    word ^= c;
    c = tables[7][word & 0xFF] ^ tables[6][(word >> 8) & 0xFF] ^
        tables[5][(word >> 16) & 0xFF] ^ tables[4][(word >> 24) & 0xFF] ^
        tables[3][(word >> 32) & 0xFF] ^ tables[2][(word >> 40) & 0xFF] ^
        tables[1][(word >> 48) & 0xFF] ^ tables[0][word >> 56];
    data += 8;
    size -= 8;
  }
  for (; size > 0; --size, ++data) {
    c = (c >> 8) ^ tables[0][(c ^ *data) & 0xFF];
  }
  return ~c;
}

#if defined(__x86_64__)

__attribute__((target("sse4.2"))) std::uint32_t crc32c_sse42(
    const std::uint8_t* data, std::size_t size, std::uint32_t crc) noexcept {
  std::uint64_t c = ~crc;
  // Byte steps up to an 8-byte boundary: aligned loads are not required,
  // but they never straddle a cache line.
  while (size > 0 && (reinterpret_cast<std::uintptr_t>(data) & 7) != 0) {
    c = _mm_crc32_u8(static_cast<std::uint32_t>(c), *data);
    ++data;
    --size;
  }
  while (size >= 8) {
    std::uint64_t word = 0;
    std::memcpy(&word, data, sizeof(word));
    c = _mm_crc32_u64(c, word);
    data += 8;
    size -= 8;
  }
  for (; size > 0; --size, ++data) {
    c = _mm_crc32_u8(static_cast<std::uint32_t>(c), *data);
  }
  return ~static_cast<std::uint32_t>(c);
}

bool crc32c_sse42_supported() noexcept {
  static const bool supported = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("sse4.2") != 0;
  }();
  return supported;
}

#else

std::uint32_t crc32c_sse42(const std::uint8_t* data, std::size_t size,
                           std::uint32_t crc) noexcept {
  return crc32c_software(data, size, crc);
}

bool crc32c_sse42_supported() noexcept { return false; }

#endif

}  // namespace detail

std::uint32_t crc32c(std::span<const std::uint8_t> data,
                     std::uint32_t crc) noexcept {
  if (data.empty()) return crc;
  return detail::crc32c_sse42_supported()
             ? detail::crc32c_sse42(data.data(), data.size(), crc)
             : detail::crc32c_software(data.data(), data.size(), crc);
}

}  // namespace stream::checkpoint
