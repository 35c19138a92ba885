#include "costmodel/fit/profile_fit.h"

#include <vector>

namespace fdc::fit {

FittedProfile fit_profile(const RawProfile& raw) {
  FittedProfile p;
  p.gpu = raw.gpu_name;
  p.peaks = Peaks{raw.peak_tflops, raw.peak_gbps};
  for (const RawSource& s : raw.sources)
    p.sources.push_back(
        {{"folder", s.folder}, {"cases_used", s.used}, {"cases_excluded", s.excluded}, {"provenance", s.provenance}});
  std::map<std::string, std::vector<Sample>> groups;
  for (const Sample& s : raw.samples) groups[s.group].push_back(s);
  for (auto& [op, samples] : groups) p.ops[op] = fit_op(op, std::move(samples), p.peaks, op == "rope_rotate/rotate");
  return p;
}

}  // namespace fdc::fit
