#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/text_file.h"
#include "tests/input_error.h"

using namespace fdc;
using test::input_error_of;

namespace {

// `printf '{"a": [1, 2, 3], "b": "text"}\n' | gzip -9n`
const std::vector<unsigned char> kGzipJson = {0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x03, 0xab, 0x56,
                                              0x4a, 0x54, 0xb2, 0x52, 0x88, 0x36, 0xd4, 0x51, 0x30, 0xd2, 0x51, 0x30,
                                              0x8e, 0xd5, 0x51, 0x50, 0x4a, 0x02, 0xf2, 0x95, 0x4a, 0x52, 0x2b, 0x4a,
                                              0x94, 0x6a, 0xb9, 0x00, 0xf2, 0x52, 0x06, 0x19, 0x1e, 0x00, 0x00, 0x00};
const std::string kPlainJson = "{\"a\": [1, 2, 3], \"b\": \"text\"}\n";

std::string write_bytes(const std::string& name, const std::vector<unsigned char>& bytes) {
  const auto dir = std::filesystem::temp_directory_path() / "fdcsim_text_file_test";
  std::filesystem::create_directories(dir);
  const std::string path = (dir / name).string();
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  return path;
}

std::string write_text(const std::string& name, const std::string& text) {
  return write_bytes(name, std::vector<unsigned char>(text.begin(), text.end()));
}

}  // namespace

TEST_CASE("read_text_file reads plain files whole and names the file it cannot open") {
  const std::string plain = write_text("plain.json", kPlainJson);
  CHECK(read_text_file(plain) == kPlainJson);
  CHECK(input_error_of([] { read_text_file("/nonexistent/t.jsonl", "timeline"); }) ==
        "/nonexistent/t.jsonl: cannot open the timeline for reading");
  CHECK(input_error_of([] { read_text_file("/nonexistent/x.json"); }) ==
        "/nonexistent/x.json: cannot open file for reading");
  // A one-byte file is not mistaken for gzip.
  CHECK(read_text_file(write_text("one.txt", "\x1f")) == "\x1f");
}

TEST_CASE("read_text_file decompresses gzip files whatever their name, and refuses damaged ones") {
  if (!have_gzip_support()) {
    const std::string gz = write_bytes("nozlib.json.gz", kGzipJson);
    CHECK(input_error_of([&] { read_text_file(gz); }).find("this build of fdcsim has no zlib") != std::string::npos);
    return;
  }
  CHECK(read_text_file(write_bytes("a.json.gz", kGzipJson)) == kPlainJson);
  CHECK(read_text_file(write_bytes("no-suffix.json", kGzipJson)) == kPlainJson);  // by its magic bytes
  CHECK(load_json_file(write_bytes("cfg.json.gz", kGzipJson)) == Json::parse(kPlainJson));

  std::vector<unsigned char> cut(kGzipJson.begin(), kGzipJson.end() - 12);
  const std::string truncated = write_bytes("cut.json.gz", cut);
  CHECK(input_error_of([&] { read_text_file(truncated); }) ==
        truncated + ": truncated gzip data (the file ends inside the stream)");

  std::vector<unsigned char> bad = kGzipJson;
  bad[bad.size() - 6] ^= 0xff;  // the CRC-32 of the content
  const std::string corrupt = write_bytes("crc.json.gz", bad);
  const std::string msg = input_error_of([&] { read_text_file(corrupt); });
  CHECK(msg.rfind(corrupt + ": corrupt gzip data (", 0) == 0);
}

TEST_CASE("nonfinite_literals_to_null: bare NaN / inf values become null, strings and keys stay") {
  CHECK(nonfinite_literals_to_null(R"({"a": NaN, "b": -inf, "c": [Infinity, 1, -Infinity], "d": -NaN})") ==
        R"({"a": null, "b": null, "c": [null, 1, null], "d": null})");
  int replaced = -1;
  CHECK(nonfinite_literals_to_null(R"({"a":nan,"b":inf})", &replaced) == R"({"a":null,"b":null})");
  CHECK(replaced == 2);
  // Inside strings (names, escaped quotes) nothing changes; neither do keys or finite numbers.
  const std::string s = R"({"name": "NaN, inf: \"NaN\"", "NaN": 1.5e-3, "x": "inf"})";
  CHECK(nonfinite_literals_to_null(s, &replaced) == s);
  CHECK(replaced == 0);
  // Only whole literals: a longer bare word is left for the parser to refuse.
  CHECK(nonfinite_literals_to_null(R"({"a": nanx})") == R"({"a": nanx})");
  CHECK(Json::parse(nonfinite_literals_to_null("{\"v\": [\n  NaN\n]}"))["v"][0].is_null());
}
