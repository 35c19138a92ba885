#include "validate/engine/safetensors.h"

#include <nlohmann/json.hpp>

#include <cstring>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "kernels/common/dtype.h"

namespace fdc::engine {

const char* to_string(StDType t) {
  switch (t) {
    case StDType::kF32: return "F32";
    case StDType::kF16: return "F16";
    case StDType::kBF16: return "BF16";
  }
  return "?";
}

int st_dtype_bytes(StDType t) { return t == StDType::kF32 ? 4 : 2; }

int64_t StTensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return n;
}

namespace {

std::string shape_str(const std::vector<int64_t>& s) {
  std::ostringstream os;
  os << '[';
  for (size_t i = 0; i < s.size(); ++i) os << (i ? ", " : "") << s[i];
  os << ']';
  return os.str();
}

// A file's size in bytes, or an InputError naming it.
int64_t file_size(std::ifstream& f, const std::string& path) {
  f.seekg(0, std::ios::end);
  const std::streamoff n = f.tellg();
  if (n < 0) throw InputError(path + ": cannot determine the file size");
  f.seekg(0, std::ios::beg);
  return static_cast<int64_t>(n);
}

}  // namespace

SafetensorsFile::SafetensorsFile(std::string path) : path_(std::move(path)) {
  std::ifstream f(path_, std::ios::binary);
  if (!f) throw InputError(path_ + ": cannot open the weights file");
  const int64_t size = file_size(f, path_);
  if (size < 8) throw InputError(path_ + ": not a safetensors file (" + std::to_string(size) + " bytes, expected an 8-byte header length first)");
  unsigned char len_bytes[8];
  f.read(reinterpret_cast<char*>(len_bytes), 8);
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | len_bytes[i];
  if (header_len == 0 || header_len > static_cast<uint64_t>(size - 8) || header_len > (uint64_t{100} << 20))
    throw InputError(path_ + ": not a safetensors file (header length " + std::to_string(header_len) +
                     " does not fit a file of " + std::to_string(size) + " bytes)");
  std::string header(header_len, '\0');
  f.read(header.data(), static_cast<std::streamsize>(header_len));
  if (!f) throw InputError(path_ + ": truncated safetensors header");
  data_offset_ = 8 + static_cast<int64_t>(header_len);
  const int64_t data_size = size - data_offset_;

  nlohmann::json j;
  try {
    j = nlohmann::json::parse(header);
  } catch (const nlohmann::json::parse_error& e) {
    throw InputError(path_ + ": safetensors header is not valid JSON (" + e.what() + ")");
  }
  if (!j.is_object()) throw InputError(path_ + ": safetensors header is not a JSON object");
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& name = it.key();
    if (name == "__metadata__") continue;
    const auto& v = it.value();
    const std::string where = path_ + ": tensor '" + name + "'";
    if (!v.is_object() || !v.contains("dtype") || !v.contains("shape") || !v.contains("data_offsets"))
      throw InputError(where + ": expected an object with dtype, shape and data_offsets");
    StTensorInfo t;
    if (!v["dtype"].is_string()) throw InputError(where + ": dtype must be a string");
    const std::string dt = v["dtype"].get<std::string>();
    if (dt == "F32") {
      t.dtype = StDType::kF32;
    } else if (dt == "F16") {
      t.dtype = StDType::kF16;
    } else if (dt == "BF16") {
      t.dtype = StDType::kBF16;
    } else {
      throw InputError(where + ": dtype " + dt + " is not supported (expected F32, F16 or BF16)");
    }
    if (!v["shape"].is_array()) throw InputError(where + ": shape must be an array of sizes");
    for (const auto& s : v["shape"]) {
      if (!s.is_number_integer() || s.get<int64_t>() < 0) throw InputError(where + ": shape entries must be sizes >= 0");
      t.shape.push_back(s.get<int64_t>());
    }
    const auto& off = v["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_integer() || !off[1].is_number_integer())
      throw InputError(where + ": data_offsets must be [begin, end]");
    t.begin = off[0].get<int64_t>();
    t.end = off[1].get<int64_t>();
    if (t.begin < 0 || t.end < t.begin || t.end > data_size)
      throw InputError(where + ": data_offsets [" + std::to_string(t.begin) + ", " + std::to_string(t.end) +
                       ") outside the data section of " + std::to_string(data_size) + " bytes (file truncated?)");
    if (t.end - t.begin != t.numel() * st_dtype_bytes(t.dtype))
      throw InputError(where + ": " + std::to_string(t.end - t.begin) + " bytes for shape " + shape_str(t.shape) +
                       " of " + dt + " (expected " + std::to_string(t.numel() * st_dtype_bytes(t.dtype)) + ")");
    tensors_.emplace(name, std::move(t));
  }
}

const StTensorInfo& SafetensorsFile::require(const std::string& name, const std::vector<int64_t>& shape) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end())
    throw InputError(path_ + ": tensor '" + name + "' is missing (expected shape " + shape_str(shape) + ")");
  if (it->second.shape != shape)
    throw InputError(path_ + ": tensor '" + name + "' has shape " + shape_str(it->second.shape) + ", expected " +
                     shape_str(shape));
  return it->second;
}

std::vector<float> SafetensorsFile::read_f32(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) throw InputError(path_ + ": tensor '" + name + "' is missing");
  const StTensorInfo& t = it->second;
  std::ifstream f(path_, std::ios::binary);
  if (!f) throw InputError(path_ + ": cannot open the weights file");
  std::vector<char> raw(static_cast<size_t>(t.end - t.begin));
  f.seekg(data_offset_ + t.begin);
  f.read(raw.data(), static_cast<std::streamsize>(raw.size()));
  if (!f) throw InputError(path_ + ": tensor '" + name + "': read failed (file truncated?)");
  std::vector<float> out(static_cast<size_t>(t.numel()));
  for (size_t i = 0; i < out.size(); ++i) {
    if (t.dtype == StDType::kF32) {
      std::memcpy(&out[i], raw.data() + 4 * i, 4);
    } else {
      uint16_t b = 0;
      std::memcpy(&b, raw.data() + 2 * i, 2);
      out[i] = t.dtype == StDType::kBF16 ? kernels::bf16_bits_to_float(b) : kernels::fp16_bits_to_float(b);
    }
  }
  return out;
}

void write_safetensors(const std::string& path, const std::map<std::string, StTensorData>& tensors, StDType dtype) {
  nlohmann::json header = nlohmann::json::object();
  header["__metadata__"] = {{"format", "pt"}};
  int64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    int64_t n = 1;
    for (int64_t s : t.shape) n *= s;
    FDC_CHECK(n == static_cast<int64_t>(t.values.size()), "tensor " << name << ": shape and values disagree");
    const int64_t bytes = n * st_dtype_bytes(dtype);
    header[name] = {{"dtype", to_string(dtype)}, {"shape", t.shape}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text = header.dump();
  while ((text.size() + 8) % 8 != 0) text.push_back(' ');  // data section 8-byte aligned, as writers do
  std::ofstream f(path, std::ios::binary);
  if (!f) throw InputError(path + ": cannot create the weights file");
  uint64_t len = text.size();
  for (int i = 0; i < 8; ++i) f.put(static_cast<char>((len >> (8 * i)) & 0xff));
  f.write(text.data(), static_cast<std::streamsize>(text.size()));
  for (const auto& [name, t] : tensors) {
    for (float v : t.values) {
      if (dtype == StDType::kF32) {
        f.write(reinterpret_cast<const char*>(&v), 4);
      } else {
        const uint16_t b = dtype == StDType::kBF16 ? kernels::float_to_bf16_bits(v) : kernels::float_to_fp16_bits(v);
        f.put(static_cast<char>(b & 0xff));
        f.put(static_cast<char>(b >> 8));
      }
    }
  }
  if (!f) throw InputError(path + ": write failed");
}

}  // namespace fdc::engine
