// Runs a command body and turns the project's exceptions into its documented exit codes, with
// the message on stderr: InputError -> 2, InternalError -> 3, file-system and stream errors -> 4.
#pragma once

#include <filesystem>
#include <functional>
#include <ios>
#include <iostream>

#include "apps/fdcsim/exit_codes.h"
#include "core/error.h"

namespace fdc::cli {

inline int run_guarded(const std::function<int()>& body) {
  try {
    return body();
  } catch (const InputError& e) {
    std::cerr << "fdcsim: error: " << e.what() << "\n";
    return kExitBadInput;
  } catch (const InternalError& e) {
    std::cerr << "fdcsim: " << e.what() << "\n";
    return kExitInternal;
  } catch (const std::filesystem::filesystem_error& e) {
    std::cerr << "fdcsim: " << e.what() << "\n";
    return kExitIo;
  } catch (const std::ios_base::failure& e) {
    std::cerr << "fdcsim: " << e.what() << "\n";
    return kExitIo;
  }
}

}  // namespace fdc::cli
