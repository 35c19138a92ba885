// One fitted law written into a profile file and read back, for the fit tests that check a law
// survives the file (configs/profiles/<gpu>.json format, costmodel/fit/profile_io.h).
#pragma once

#include "costmodel/fit/op_fit.h"
#include "costmodel/fit/profile_io.h"
#include "tests/traces/temp_file.h"

namespace fdc::test {

inline fit::OpFit written_and_read(const fit::OpFit& law) {
  TempFile out("profile.json", "");
  fit::FittedProfile p;
  p.gpu = "test";
  p.ops[law.op] = law;
  fit::write_profile(p, "test", out.path());
  return fit::read_profile(out.path()).ops.at(law.op);
}

}  // namespace fdc::test
