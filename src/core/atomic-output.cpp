#include "core/atomic-output.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <system_error>

namespace fs = std::filesystem;

namespace rtnq {

namespace {
Status errno_status(const fs::path& path, const char* what, int err) {
  std::string msg = path.string() + ": " + what + ": " + std::strerror(err);
  if (err == ENOSPC || err == EDQUOT) msg += " (the disk is full; nothing was left behind)";
  return io_error(msg);
}
}  // namespace

Expected<AtomicDir> AtomicDir::create(const fs::path& final_path, bool force) {
  std::error_code ec;
  if (fs::exists(final_path, ec) && !force)
    return Status(StatusCode::kAlreadyExists,
                  final_path.string() + " already exists; pass --force to replace it");
  AtomicDir d;
  d.final_ = final_path;
  d.force_ = force;
  fs::path parent = final_path.parent_path();
  if (parent.empty()) parent = ".";
  // Create missing parents, as `mkdir -p` would: "out/model" in a fresh checkout should just work.
  if (!fs::is_directory(parent, ec)) {
    fs::create_directories(parent, ec);
    if (ec || !fs::is_directory(parent))
      return io_error(parent.string() + ": cannot create the output's parent folder: " + ec.message());
  }
  d.tmp_ = parent / (final_path.filename().string() + ".rtnq-tmp-" + std::to_string(::getpid()));
  fs::remove_all(d.tmp_, ec);
  if (!fs::create_directory(d.tmp_, ec)) return io_error(d.tmp_.string() + ": cannot create: " + ec.message());
  return d;
}

AtomicDir::AtomicDir(AtomicDir&& o) noexcept
    : final_(std::move(o.final_)), tmp_(std::move(o.tmp_)), force_(o.force_), done_(o.done_) {
  o.done_ = true;
}

AtomicDir::~AtomicDir() {
  if (!done_ && !tmp_.empty()) {
    std::error_code ec;
    fs::remove_all(tmp_, ec);
  }
}

Status AtomicDir::commit() {
  std::error_code ec;
  fs::path old;
  if (fs::exists(final_, ec)) {
    if (!force_) return Status(StatusCode::kAlreadyExists, final_.string() + " appeared while writing; not replacing it");
    // Move the old one aside first so a failed rename never leaves neither.
    old = final_;
    old += ".rtnq-old-" + std::to_string(::getpid());
    fs::rename(final_, old, ec);
    if (ec) return io_error(final_.string() + ": cannot move the existing output aside: " + ec.message());
  }
  fs::rename(tmp_, final_, ec);
  if (ec) {
    std::error_code ec2;
    if (!old.empty()) fs::rename(old, final_, ec2);
    return io_error(final_.string() + ": cannot rename the finished output into place: " + ec.message());
  }
  done_ = true;
  if (!old.empty()) fs::remove_all(old, ec);
  return Status::ok();
}

Expected<FileWriter> FileWriter::open(const fs::path& path) {
  FileWriter w;
  w.path_ = path;
  w.fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (w.fd_ < 0) return errno_status(path, "cannot create", errno);
  return w;
}

FileWriter::FileWriter(FileWriter&& o) noexcept : fd_(o.fd_), written_(o.written_), path_(std::move(o.path_)) { o.fd_ = -1; }

FileWriter::~FileWriter() {
  if (fd_ >= 0) ::close(fd_);
}

Status FileWriter::append(const void* data, size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    ssize_t k = ::write(fd_, p, n);
    if (k < 0) {
      if (errno == EINTR) continue;
      return errno_status(path_, "write failed", errno);
    }
    p += k;
    n -= size_t(k);
    written_ += uint64_t(k);
  }
  return Status::ok();
}

Status FileWriter::close() {
  if (fd_ < 0) return Status::ok();
  if (::fsync(fd_) != 0) return errno_status(path_, "fsync failed", errno);
  int rc = ::close(fd_);
  fd_ = -1;
  if (rc != 0) return errno_status(path_, "close failed", errno);
  return Status::ok();
}

Status write_file(const fs::path& path, std::span<const uint8_t> bytes) {
  RTNQ_ASSIGN_OR_RETURN(FileWriter w, FileWriter::open(path));
  RTNQ_RETURN_IF_ERROR(w.append(bytes.data(), bytes.size()));
  return w.close();
}

Status write_text_file(const fs::path& path, const std::string& text) {
  return write_file(path, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(text.data()), text.size()));
}

Status write_file_atomic(const fs::path& path, const std::string& text) {
  fs::path tmp = path;
  tmp += ".tmp-" + std::to_string(::getpid());
  Status st = write_text_file(tmp, text);
  std::error_code ec;
  if (!st.is_ok()) {
    fs::remove(tmp, ec);
    return st;
  }
  fs::rename(tmp, path, ec);
  if (ec) {
    fs::remove(tmp, ec);
    return io_error(path.string() + ": rename failed: " + ec.message());
  }
  return Status::ok();
}

}  // namespace rtnq
