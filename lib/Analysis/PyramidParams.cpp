//===- PyramidParams.cpp - Pyramid configuration checks -------------------===//

#include "hag/Analysis/PyramidParams.h"
#include "hag/Analysis/PyramidWindows.h"

#include <cmath>
#include <sstream>

namespace hag {

const char *compressName(Compress mode) {
  switch (mode) {
  case Compress::GatedMean:
    return "gated_mean";
  case Compress::Max:
    return "max";
  case Compress::Conv:
    return "conv";
  }
  return "?";
}

bool parseCompress(const std::string &name, Compress &mode) {
  if (name == "gated_mean")
    mode = Compress::GatedMean;
  else if (name == "max")
    mode = Compress::Max;
  else if (name == "conv")
    mode = Compress::Conv;
  else
    return false;
  return true;
}

std::string validatePyramidParams(const PyramidParams &p) {
  std::ostringstream os;
  if (p.heads < 1)
    os << "heads (" << p.heads << ") must be >= 1";
  else if (p.kvHeads < 1)
    os << "kv_heads (" << p.kvHeads << ") must be >= 1";
  else if (p.heads % p.kvHeads != 0)
    os << "heads (" << p.heads << ") must be a multiple of kv_heads ("
       << p.kvHeads << ")";
  else if (p.headDim < 1)
    os << "head_dim (" << p.headDim << ") must be >= 1";
  else if (p.ratio < 2)
    os << "ratio (" << p.ratio << ") must be >= 2";
  else if (p.block < 1)
    os << "block (" << p.block << ") must be >= 1";
  else if (p.block % p.ratio != 0)
    os << "block (" << p.block << ") must be a multiple of ratio (" << p.ratio
       << ")";
  else if (!p.isAutoLevels() &&
           (p.levels < kMinLevels || p.levels > kMaxLevels))
    os << "levels (" << p.levels << ") must be in [" << kMinLevels << ", "
       << kMaxLevels << "] or auto";
  else if (p.window < 1)
    os << "window (" << p.window << ") must be >= 1";
  else if (p.summary < 1 || p.summary > kMaxSummary)
    os << "summary (" << p.summary << ") must be in [1, " << kMaxSummary << "]";
  else if (!(p.temperature > 0) || !std::isfinite(p.temperature))
    os << "temperature (" << p.temperature << ") must be finite and > 0";
  else if (!(p.massBias >= 0) || !std::isfinite(p.massBias))
    os << "mass_bias (" << p.massBias << ") must be finite and >= 0";
  else if (p.selectK < 0)
    os << "select_k (" << p.selectK << ") must be >= 0";
  else if (!(p.eps > 0) || !std::isfinite(p.eps))
    os << "eps (" << p.eps << ") must be finite and > 0";
  else if (p.maxSeq < 1)
    os << "max_seq (" << p.maxSeq << ") must be >= 1";
  else if (p.isAutoLevels() && resolveLevels(p, p.maxSeq) < 0)
    os << "levels = auto needs more than " << kMaxLevels
       << " levels at max_seq (" << p.maxSeq << ") with block (" << p.block
       << "), ratio (" << p.ratio << ") and window (" << p.window << ")";
  return os.str();
}

} // namespace hag
