// Exit codes of every fdcsim command (documented in docs/cli.md).
#pragma once

namespace fdc::cli {
inline constexpr int kExitOk = 0;
inline constexpr int kExitNotMet = 1;    // max-rate / min-servers: no rate / server count tried meets the SLO
inline constexpr int kExitBadInput = 2;  // bad command line, config or trace: the message names file and key/line
inline constexpr int kExitInternal = 3;  // an internal invariant broke (a bug): please report it
inline constexpr int kExitIo = 4;        // an output file or folder could not be written
}  // namespace fdc::cli
