// Reading and writing the safetensors format (Hugging Face): an 8-byte little-endian header
// length, a JSON header naming every tensor's dtype, shape and byte range, then the raw data.
// Everything is checked before a byte of data is trusted; errors (fdc::InputError) name the file
// and the tensor.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace fdc::engine {

enum class StDType { kF32, kF16, kBF16 };
const char* to_string(StDType t);
int st_dtype_bytes(StDType t);

struct StTensorInfo {
  StDType dtype = StDType::kF32;
  std::vector<int64_t> shape;
  int64_t begin = 0, end = 0;  // byte range inside the data section
  int64_t numel() const;
};

class SafetensorsFile {
 public:
  // Reads and checks the header; the data is read on demand.
  explicit SafetensorsFile(std::string path);

  const std::string& path() const { return path_; }
  const std::map<std::string, StTensorInfo>& tensors() const { return tensors_; }
  bool contains(const std::string& name) const { return tensors_.count(name) != 0; }
  // Throws naming the file and the tensor when it is missing or its shape differs.
  const StTensorInfo& require(const std::string& name, const std::vector<int64_t>& shape) const;
  // The tensor converted to fp32 (any stored dtype).
  std::vector<float> read_f32(const std::string& name) const;

 private:
  std::string path_;
  int64_t data_offset_ = 0;
  std::map<std::string, StTensorInfo> tensors_;
};

// Writes `tensors` (fp32 values stored as `dtype`) to a safetensors file, names in sorted order.
struct StTensorData {
  std::vector<int64_t> shape;
  std::vector<float> values;
};
void write_safetensors(const std::string& path, const std::map<std::string, StTensorData>& tensors, StDType dtype);

}  // namespace fdc::engine
