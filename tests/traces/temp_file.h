// A file in the system temp directory holding given text, removed when the object goes away.
#pragma once

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <string>

namespace fdc::test {

class TempFile {
 public:
  // `name` becomes the end of the file name (keep the extension: "x.csv").
  TempFile(const std::string& name, const std::string& text) {
    static std::atomic<int> counter{0};
    path_ = (std::filesystem::temp_directory_path() /
             ("fdcsim_traces_" + std::to_string(::getpid()) + "_" + std::to_string(counter++) + "_" + name))
                .string();
    std::ofstream out(path_, std::ios::binary);
    out << text;
  }
  ~TempFile() {
    std::error_code ec;
    std::filesystem::remove(path_, ec);
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  const std::string& path() const { return path_; }
  std::string dir() const { return std::filesystem::path(path_).parent_path().string(); }
  std::string filename() const { return std::filesystem::path(path_).filename().string(); }

 private:
  std::string path_;
};

}  // namespace fdc::test
