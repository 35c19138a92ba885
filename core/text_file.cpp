#include "core/text_file.h"

#include <array>
#include <cctype>
#include <fstream>
#include <sstream>

#include "core/error.h"

#ifdef FDCSIM_HAVE_ZLIB
#include <zlib.h>
#endif

namespace fdc {
namespace {

bool starts_with_gzip_magic(std::ifstream& in) {
  std::array<unsigned char, 2> magic{};
  in.read(reinterpret_cast<char*>(magic.data()), 2);
  const bool gz = in.gcount() == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
  in.clear();
  in.seekg(0);
  return gz;
}

#ifdef FDCSIM_HAVE_ZLIB
std::string read_gzip(const std::string& path, const std::string& what) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (f == nullptr) throw InputError(path + ": cannot open " + what + " for reading");
  std::string out;
  std::array<char, 1 << 16> buf{};
  for (;;) {
    const int n = gzread(f, buf.data(), static_cast<unsigned>(buf.size()));
    if (n < 0) {
      int code = 0;
      const std::string msg = gzerror(f, &code);
      gzclose(f);
      throw InputError(path + ": corrupt gzip data (" + msg + ")");
    }
    if (n == 0) break;
    out.append(buf.data(), static_cast<size_t>(n));
  }
  // gzread returns 0 both at the end and on a stream cut short; gzclose's code tells them apart.
  const int rc = gzclose(f);
  if (rc == Z_BUF_ERROR) throw InputError(path + ": truncated gzip data (the file ends inside the stream)");
  if (rc != Z_OK) throw InputError(path + ": corrupt gzip data (zlib error " + std::to_string(rc) + ")");
  return out;
}
#endif

}  // namespace

bool have_gzip_support() {
#ifdef FDCSIM_HAVE_ZLIB
  return true;
#else
  return false;
#endif
}

std::string read_text_file(const std::string& path, const std::string& what) {
  const std::string noun = what.empty() ? "file" : "the " + what;
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path + ": cannot open " + noun + " for reading");
  if (starts_with_gzip_magic(in)) {
#ifdef FDCSIM_HAVE_ZLIB
    in.close();
    return read_gzip(path, noun);
#else
    throw InputError(path + ": gzip-compressed, and this build of fdcsim has no zlib (install zlib1g-dev and " +
                     "rebuild, or gunzip the file)");
#endif
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string nonfinite_literals_to_null(const std::string& text, int* replaced_count) {
  static const char* const kLiterals[] = {"-Infinity", "Infinity", "-NaN", "NaN", "-nan", "nan", "-inf", "inf"};
  std::string out;
  out.reserve(text.size());
  int count = 0;
  bool in_string = false;
  char last = 0;  // the last character outside strings and blanks: a value follows ':', '[' or ','
  for (size_t i = 0; i < text.size();) {
    const char c = text[i];
    if (in_string) {
      out += c;
      if (c == '\\' && i + 1 < text.size()) {
        out += text[i + 1];
        i += 2;
        continue;
      }
      if (c == '"') in_string = false;
      ++i;
      continue;
    }
    if (c == '"') {
      in_string = true;
      last = c;
      out += c;
      ++i;
      continue;
    }
    if (last == ':' || last == '[' || last == ',') {
      bool replaced = false;
      for (const char* lit : kLiterals) {
        const size_t n = std::char_traits<char>::length(lit);
        const bool word_ends = i + n >= text.size() || !std::isalnum(static_cast<unsigned char>(text[i + n]));
        if (text.compare(i, n, lit) == 0 && word_ends) {
          out += "null";
          ++count;
          i += n;
          last = 'l';
          replaced = true;
          break;
        }
      }
      if (replaced) continue;
    }
    if (!std::isspace(static_cast<unsigned char>(c))) last = c;
    out += c;
    ++i;
  }
  if (replaced_count != nullptr) *replaced_count = count;
  return out;
}

}  // namespace fdc
