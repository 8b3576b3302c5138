#pragma once
// A SQLite VFS that passes everything to the default one, except that its
// writes can be made to fail with SQLITE_FULL: a disk that fills up, at the
// moment a test chooses, without a small filesystem to mount.
//
//   jobpoll_test::sqlite_fault_vfs& vfs = jobpoll_test::sqlite_fault_vfs::get();
//   jobpoll::sqlite_store store(path, "b", {.vfs = vfs.name()});
//   vfs.fail_writes(true);   // every write from now on: SQLITE_FULL

#include <atomic>
#include <cstddef>
#include <stdexcept>

#include <sqlite3.h>

namespace jobpoll_test {

class sqlite_fault_vfs {
 public:
  /// The VFS, registered on first use (not as the default).
  static sqlite_fault_vfs& get() {
    static sqlite_fault_vfs instance;
    return instance;
  }

  static const char* name() noexcept { return "jobpoll_fault"; }

  /// From now on, every write fails with SQLITE_FULL (or works again).
  void fail_writes(bool on) noexcept { failing_.store(on); }
  /// Writes refused so far.
  std::size_t refused() const noexcept { return refused_.load(); }

 private:
  // Our file: the base's file object follows it in the same allocation.
  struct file {
    sqlite3_file base;
    sqlite3_file* real;
  };

  sqlite_fault_vfs() {
    real_ = sqlite3_vfs_find(nullptr);
    if (real_ == nullptr) throw std::runtime_error("sqlite_fault_vfs: no default SQLite VFS");
    vfs_ = *real_;
    vfs_.zName = name();
    vfs_.szOsFile = static_cast<int>(sizeof(file)) + real_->szOsFile;
    vfs_.pAppData = this;
    vfs_.pNext = nullptr;
    vfs_.xOpen = &open;
    io_.iVersion = 3;
    io_.xClose = [](sqlite3_file* f) {
      sqlite3_file* r = real(f);
      return r->pMethods != nullptr ? r->pMethods->xClose(r) : SQLITE_OK;
    };
    io_.xRead = [](sqlite3_file* f, void* p, int n, sqlite3_int64 at) { return real(f)->pMethods->xRead(real(f), p, n, at); };
    io_.xWrite = [](sqlite3_file* f, const void* p, int n, sqlite3_int64 at) {
      if (get().failing_.load()) {
        get().refused_.fetch_add(1);
        return SQLITE_FULL;
      }
      return real(f)->pMethods->xWrite(real(f), p, n, at);
    };
    io_.xTruncate = [](sqlite3_file* f, sqlite3_int64 size) { return real(f)->pMethods->xTruncate(real(f), size); };
    io_.xSync = [](sqlite3_file* f, int flags) { return real(f)->pMethods->xSync(real(f), flags); };
    io_.xFileSize = [](sqlite3_file* f, sqlite3_int64* size) { return real(f)->pMethods->xFileSize(real(f), size); };
    io_.xLock = [](sqlite3_file* f, int lock) { return real(f)->pMethods->xLock(real(f), lock); };
    io_.xUnlock = [](sqlite3_file* f, int lock) { return real(f)->pMethods->xUnlock(real(f), lock); };
    io_.xCheckReservedLock = [](sqlite3_file* f, int* out) {
      return real(f)->pMethods->xCheckReservedLock(real(f), out);
    };
    io_.xFileControl = [](sqlite3_file* f, int op, void* arg) { return real(f)->pMethods->xFileControl(real(f), op, arg); };
    io_.xSectorSize = [](sqlite3_file* f) { return real(f)->pMethods->xSectorSize(real(f)); };
    io_.xDeviceCharacteristics = [](sqlite3_file* f) { return real(f)->pMethods->xDeviceCharacteristics(real(f)); };
    io_.xShmMap = [](sqlite3_file* f, int region, int size, int extend, void volatile** out) {
      return real(f)->pMethods->xShmMap(real(f), region, size, extend, out);
    };
    io_.xShmLock = [](sqlite3_file* f, int offset, int n, int flags) {
      return real(f)->pMethods->xShmLock(real(f), offset, n, flags);
    };
    io_.xShmBarrier = [](sqlite3_file* f) { real(f)->pMethods->xShmBarrier(real(f)); };
    io_.xShmUnmap = [](sqlite3_file* f, int drop) { return real(f)->pMethods->xShmUnmap(real(f), drop); };
    io_.xFetch = [](sqlite3_file* f, sqlite3_int64 at, int n, void** out) {
      return real(f)->pMethods->xFetch(real(f), at, n, out);
    };
    io_.xUnfetch = [](sqlite3_file* f, sqlite3_int64 at, void* p) { return real(f)->pMethods->xUnfetch(real(f), at, p); };
    if (sqlite3_vfs_register(&vfs_, 0) != SQLITE_OK) throw std::runtime_error("sqlite_fault_vfs: cannot register");
  }

  static sqlite3_file* real(sqlite3_file* f) noexcept { return reinterpret_cast<file*>(f)->real; }

  static int open(sqlite3_vfs* vfs, const char* name, sqlite3_file* f, int flags, int* out_flags) {
    auto* self = static_cast<sqlite_fault_vfs*>(vfs->pAppData);
    auto* ours = reinterpret_cast<file*>(f);
    ours->real = reinterpret_cast<sqlite3_file*>(ours + 1);
    ours->real->pMethods = nullptr;
    const int rc = self->real_->xOpen(self->real_, name, ours->real, flags, out_flags);
    // Without methods SQLite does not call xClose: only a file the base opened gets ours.
    ours->base.pMethods = ours->real->pMethods != nullptr ? &self->io_ : nullptr;
    return rc;
  }

  sqlite3_vfs* real_ = nullptr;
  sqlite3_vfs vfs_{};
  sqlite3_io_methods io_{};
  std::atomic<bool> failing_{false};
  std::atomic<std::size_t> refused_{0};
};

}  // namespace jobpoll_test
