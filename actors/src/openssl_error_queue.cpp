// Interposes OpenSSL's I/O entry points to fix a CAF 0.17.6 bug that let
// any stranger on the cluster port fail a job, and logs each refused TLS
// peer with the reason.
//
// The bug: CAF's OpenSSL module (libcaf_openssl/src/openssl/session.cpp)
// never clears OpenSSL's per-thread error queue. A failed handshake (garbage
// bytes, no certificate, a foreign CA, a plaintext peer, even a bare TCP
// connect and close) leaves its errors there, and since every connection
// runs on the one multiplexer thread, the next SSL_read of a good session
// that would block (-1, WANT_READ) is classified by SSL_get_error as
// SSL_ERROR_SSL; CAF then closes that good connection, and the coordinator
// loses a registered worker. Debian builds CAF with logging compiled out, so
// nothing ever drains the queue or says why. (libcaf_net of CAF 0.19 clears
// the queue before each call; libcaf_openssl is unfixed upstream.)
//
// The fix, without rebuilding CAF: define SSL_read, SSL_write, SSL_accept
// and SSL_connect in the executable. The dynamic linker resolves
// libcaf_openssl's references (SSL_read@OPENSSL_3.0.0, ...) to the
// executable's definitions first; each clears the queue, as SSL_get_error(3)
// requires before an I/O call, and calls the real function, found with
// dlvsym(RTLD_NEXT). This file is therefore compiled into every executable
// that links stream::actors (an INTERFACE source, see actors/CMakeLists.txt),
// never into a library, and the symbols are exported explicitly.
//
// SSL_get_error is wrapped for logging only: it returns what OpenSSL returns
// and only peeks at the queue. A connection whose handshake failed is logged
// once: "stream: TLS peer 127.0.0.1:40112 refused: no certificate (peer did
// not return a certificate)".

#include <arpa/inet.h>
#include <dlfcn.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <sys/socket.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>

namespace {

/// The real OpenSSL function `name`. Debian 12's libssl.so.3 versions every
/// symbol OPENSSL_3.0.0, the version CAF was linked against; plain dlsym is
/// the fallback for a libssl that versions otherwise. Without it nothing
/// TLS can work, so a missing symbol ends the process at once.
template <class F>
F real_function(const char* name) {
  void* found = dlvsym(RTLD_NEXT, name, "OPENSSL_3.0.0");
  if (found == nullptr) found = dlsym(RTLD_NEXT, name);
  if (found == nullptr) {
    std::fprintf(stderr, "stream: cannot find OpenSSL's %s: %s\n", name,
                 dlerror());
    std::abort();
  }
  return reinterpret_cast<F>(found);
}

// Each looked up once (thread-safe function-local statics).
auto real_read() {
  static const auto fn = real_function<decltype(&::SSL_read)>("SSL_read");
  return fn;
}
auto real_write() {
  static const auto fn = real_function<decltype(&::SSL_write)>("SSL_write");
  return fn;
}
auto real_accept() {
  static const auto fn = real_function<decltype(&::SSL_accept)>("SSL_accept");
  return fn;
}
auto real_connect() {
  static const auto fn = real_function<decltype(&::SSL_connect)>("SSL_connect");
  return fn;
}
auto real_get_error() {
  static const auto fn =
      real_function<decltype(&::SSL_get_error)>("SSL_get_error");
  return fn;
}

std::string peer_of(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  if (fd < 0 || getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0)
    return "?";
  char host[INET6_ADDRSTRLEN] = "?";
  if (ss.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
    return std::string{host} + ":" + std::to_string(ntohs(in->sin_port));
  }
  if (ss.ss_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&ss);
    // A dual-stack listener sees IPv4 peers as ::ffff:a.b.c.d.
    if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
      inet_ntop(AF_INET, &in6->sin6_addr.s6_addr[12], host, sizeof(host));
      return std::string{host} + ":" + std::to_string(ntohs(in6->sin6_port));
    }
    inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
    return "[" + std::string{host} +
           "]:" + std::to_string(ntohs(in6->sin6_port));
  }
  return "?";
}

/// What is known of one connection, kept in the SSL object's ex_data and
/// freed with it. Touched only by the thread driving that SSL (CAF: the
/// middleman while connecting, then the multiplexer thread).
struct connection_info {
  std::string peer;          ///< Taken at the first accept or connect.
  bool established = false;  ///< The handshake returned 1.
  bool got_data = false;     ///< SSL_read returned bytes once.
  bool logged = false;       ///< Its refusal was printed.
};

void free_info(void*, void* info, CRYPTO_EX_DATA*, int, long, void*) {
  delete static_cast<connection_info*>(info);
}

int info_index() {
  static const int index =
      SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, free_info);
  return index;
}

connection_info* info_of(const SSL* ssl) {
  if (info_index() < 0) return nullptr;
  return static_cast<connection_info*>(SSL_get_ex_data(ssl, info_index()));
}

connection_info* ensure_info(SSL* ssl) {
  auto* info = info_of(ssl);
  if (info != nullptr || info_index() < 0) return info;
  info = new connection_info;
  info->peer = peer_of(SSL_get_fd(ssl));
  if (SSL_set_ex_data(ssl, info_index(), info) != 1) {
    delete info;
    return nullptr;
  }
  return info;
}

/// The reason in the words of the issue an operator has to fix.
const char* category(long verify_result, unsigned long error) {
  switch (verify_result) {
    case X509_V_OK:
      break;
    case X509_V_ERR_CERT_HAS_EXPIRED:
      return "expired certificate";
    case X509_V_ERR_CERT_NOT_YET_VALID:
      return "certificate not yet valid";
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_CERT_SIGNATURE_FAILURE:
      return "unknown CA";
    default:
      return "bad certificate";
  }
  switch (ERR_GET_REASON(error)) {
    case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
      return "no certificate";
    case SSL_R_WRONG_VERSION_NUMBER:
    case SSL_R_HTTP_REQUEST:
    case SSL_R_HTTPS_PROXY_REQUEST:
    case SSL_R_UNKNOWN_PROTOCOL:
    case SSL_R_PACKET_LENGTH_TOO_LONG:
    case SSL_R_UNSUPPORTED_PROTOCOL:
    case SSL_R_RECORD_LENGTH_MISMATCH:
      return "not TLS";
    case SSL_R_UNEXPECTED_EOF_WHILE_READING:
      return "closed during the handshake";
    case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
    case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
    case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
      return "the peer refused this process's certificate";
    default:
      return "handshake failed";
  }
}

/// A port scan must not flood the log: at most this many lines per
/// `log_window`, then one line saying how many were left out.
constexpr int log_burst = 100;
constexpr std::chrono::seconds log_window{10};

bool may_log(int& suppressed) {
  static std::mutex mtx;
  static auto window_start = std::chrono::steady_clock::now();
  static int in_window = 0;
  static int left_out = 0;
  std::lock_guard<std::mutex> guard{mtx};
  auto now = std::chrono::steady_clock::now();
  if (now - window_start >= log_window) {
    window_start = now;
    in_window = 0;
  }
  if (in_window >= log_burst) {
    ++left_out;
    return false;
  }
  ++in_window;
  suppressed = left_out;
  left_out = 0;
  return true;
}

void log_refusal(const SSL* ssl, const connection_info& info, int code) {
  int suppressed = 0;
  if (!may_log(suppressed)) return;
  const unsigned long error = ERR_peek_last_error();
  const long verify = SSL_get_verify_result(ssl);
  std::string detail;
  if (verify != X509_V_OK) {
    detail = X509_verify_cert_error_string(verify);
  } else if (error != 0) {
    const char* reason = ERR_reason_error_string(error);
    detail = reason != nullptr ? reason : "error " + std::to_string(error);
  } else {
    detail = code == SSL_ERROR_SYSCALL ? "connection closed" : "no detail";
  }
  std::fprintf(stderr, "stream: TLS %s %s refused: %s (%s)%s\n",
               SSL_is_server(ssl) != 0 ? "peer" : "connection to",
               info.peer.c_str(), category(verify, error), detail.c_str(),
               suppressed > 0 ? (" [" + std::to_string(suppressed) +
                                 " refusals not logged before]")
                                    .c_str()
                              : "");
}

}  // namespace

extern "C" {

// CAF takes SSL_read's address (a GLOB_DAT relocation), which the dynamic
// linker binds to this definition too.
int SSL_read(SSL* ssl, void* buf, int num) {
  ERR_clear_error();
  const int n = real_read()(ssl, buf, num);
  if (n > 0) {
    if (auto* info = info_of(ssl)) info->got_data = true;
  }
  return n;
}

int SSL_write(SSL* ssl, const void* buf, int num) {
  ERR_clear_error();
  return real_write()(ssl, buf, num);
}

int SSL_accept(SSL* ssl) {
  auto* info = ensure_info(ssl);
  ERR_clear_error();
  const int result = real_accept()(ssl);
  if (result == 1 && info != nullptr) info->established = true;
  return result;
}

int SSL_connect(SSL* ssl) {
  auto* info = ensure_info(ssl);
  ERR_clear_error();
  const int result = real_connect()(ssl);
  if (result == 1 && info != nullptr) info->established = true;
  return result;
}

// A connection that failed before its handshake completed is logged once.
// Under TLS 1.3 a client's SSL_connect succeeds before the server has
// checked its certificate, so on the connecting side a failure before any
// data arrived counts too.
int SSL_get_error(const SSL* ssl, int ret) {
  const int code = real_get_error()(ssl, ret);
  if (code != SSL_ERROR_SSL && code != SSL_ERROR_SYSCALL) return code;
  auto* info = info_of(ssl);
  if (info == nullptr || info->logged) return code;
  const bool in_handshake =
      !info->established || (SSL_is_server(ssl) == 0 && !info->got_data);
  if (in_handshake) {
    info->logged = true;
    log_refusal(ssl, *info, code);
  }
  return code;
}

}  // extern "C"
