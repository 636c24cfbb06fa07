#include "core/mapped-file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace rtnq {

Expected<std::shared_ptr<const MappedFile>> MappedFile::open(const std::filesystem::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT) return not_found(path.string() + ": no such file");
    return io_error(path.string() + ": " + std::strerror(err));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return io_error(path.string() + ": not a regular file");
  }
  auto mf = std::shared_ptr<MappedFile>(new MappedFile());
  mf->path_ = path;
  mf->size_ = size_t(st.st_size);
  if (mf->size_ > 0) {
    void* p = ::mmap(nullptr, mf->size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      const int err = errno;
      ::close(fd);
      return io_error(path.string() + ": mmap failed: " + std::strerror(err));
    }
    mf->data_ = static_cast<const uint8_t*>(p);
  }
  ::close(fd);  // the mapping keeps the file open
  return std::shared_ptr<const MappedFile>(std::move(mf));
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
}

namespace {
void advise(const uint8_t* base, size_t size, size_t offset, size_t length, int how) {
  if (!base || offset >= size) return;
  const size_t page = size_t(::sysconf(_SC_PAGESIZE));
  const size_t start = offset / page * page;
  const size_t end = std::min(size, offset + length);
  ::madvise(const_cast<uint8_t*>(base) + start, end - start, how);
}
}  // namespace

void MappedFile::advise_sequential(size_t offset, size_t length) const {
  advise(data_, size_, offset, length, MADV_SEQUENTIAL);
  advise(data_, size_, offset, length, MADV_WILLNEED);
}

void MappedFile::advise_done(size_t offset, size_t length) const {
  advise(data_, size_, offset, length, MADV_DONTNEED);
}

}  // namespace rtnq
