#include "apps/fdcsim/run_guarded.h"

#include <filesystem>
#include <ios>

#include "core/error.h"

namespace fdc::cli {

FailureReport report_of(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const SharedFailure& f) {
    return {f.exit_code(), f.what()};
  } catch (const InputError& f) {
    return {kExitBadInput, std::string("fdcsim: error: ") + f.what()};
  } catch (const InternalError& f) {
    return {kExitInternal, std::string("fdcsim: ") + f.what()};
  } catch (const std::filesystem::filesystem_error& f) {
    return {kExitIo, std::string("fdcsim: ") + f.what()};
  } catch (const std::ios_base::failure& f) {
    return {kExitIo, std::string("fdcsim: ") + f.what()};
  }
}

}  // namespace fdc::cli
