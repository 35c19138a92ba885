// Whole-file reads for the inputs fdcsim takes (configs, raw profiles, timelines). A gzip file is
// decompressed whatever its name (recognised by its first two bytes), so a raw profile folder or
// a timeline can be stored compressed: `gzip attention.json` leaves a folder `fdcsim fit` reads as
// before. Builds without zlib read plain files and refuse gzip ones with a message saying so.
#pragma once

#include <string>

namespace fdc {

// True when this build can read gzip files.
bool have_gzip_support();

// The file's whole content (decompressed when it is gzip). `what` names the kind of file in the
// errors: "<path>: cannot open the <what> for reading" ("cannot open file for reading" without
// it), "<path>: corrupt gzip data (...)", "<path>: truncated gzip data (...)".
std::string read_text_file(const std::string& path, const std::string& what = "");

// JSON text with every bare non-finite number literal (NaN, -NaN, nan, inf, -inf, Infinity,
// -Infinity; outside strings, where a value stands) replaced by null. Google Benchmark writes
// non-finite counters so (e.g. the coefficient of variation of a counter that is 0 in every
// repetition), which JSON parsers refuse; a reader then meets null where a number was expected and
// says so. Other text is returned unchanged; `replaced`, when given, receives how many literals were.
std::string nonfinite_literals_to_null(const std::string& json_text, int* replaced = nullptr);

}  // namespace fdc
