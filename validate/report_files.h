// The files of a validation report besides validation.json (`fdcsim validate`, docs/validate.md):
//  - iterations.csv: per measured iteration, the batch, measured and predicted time, the error and
//    the prediction by op;
//  - requests.csv: per request (by id, in either timeline), measured and predicted TTFT, TPOT, JCT
//    and preemptions;
//  - iteration_times.svg: predicted against measured iteration time, log-log, by batch kind;
//  - request_cdfs.svg: the distributions of TTFT, TBT gaps and JCT, measured and predicted.
#pragma once

#include <ostream>

#include "sim/timeline.h"
#include "validate/compare.h"

namespace fdc::validate {

void write_iterations_csv(std::ostream& os, const IterationErrors& it);

// One row per request id found in either timeline, ids ascending. Timing cells of a request that
// did not complete in a timeline are empty; its `<side>_completed` cell says 0.
void write_requests_csv(std::ostream& os, const sim::Timeline& measured, const sim::Timeline& predicted);

void write_iteration_scatter_svg(std::ostream& os, const IterationErrors& it);

// Three panels (TTFT, TBT, JCT): the empirical CDFs of the measured (solid) and predicted (dashed)
// samples over a log time axis, each panel titled with P50 and P99 and their errors. Samples at or
// below zero are drawn at the panel's smallest positive value; a panel without samples says so.
void write_request_cdfs_svg(std::ostream& os, const RequestSamples& measured, const RequestSamples& predicted);

}  // namespace fdc::validate
