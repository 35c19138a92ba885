# Writes a C++ source holding the bytes of a text file (run at build time by traces/CMakeLists.txt).
# -DINPUT=<file> -DOUTPUT=<cpp> -DFUNCTION=<name of the std::string_view function in fdc::traces>
# Bytes rather than a string literal: no length limit of string literals and no delimiter to escape.
file(READ "${INPUT}" hex HEX)
string(LENGTH "${hex}" hex_length)
if(hex_length EQUAL 0)
  message(FATAL_ERROR "${INPUT} is empty")
endif()
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(REGEX REPLACE "((0x[0-9a-f][0-9a-f],){24})" "\\1\n    " bytes "${bytes}")
file(WRITE "${OUTPUT}.tmp"
"// Generated at build time from ${INPUT} by traces/embed_text.cmake; do not edit.
#include <string_view>

namespace fdc::traces {
namespace {
const unsigned char kBytes[] = {
    ${bytes}
};
}  // namespace

std::string_view ${FUNCTION}() { return {reinterpret_cast<const char*>(kBytes), sizeof(kBytes)}; }

}  // namespace fdc::traces
")
file(COPY_FILE "${OUTPUT}.tmp" "${OUTPUT}" ONLY_IF_DIFFERENT)
file(REMOVE "${OUTPUT}.tmp")
