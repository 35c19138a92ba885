// The human-readable run summary printed on stdout.
#pragma once

#include <ostream>

#include "core/config.h"

namespace fdc::cli {
void print_summary_table(std::ostream& os, const Json& summary);
}
