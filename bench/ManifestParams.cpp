//===- ManifestParams.cpp - an artifact's attention layer, for the benches ===//

#include "ManifestParams.h"

#include "hag/Analysis/PyramidWindows.h"
#include "hag/runtime/Artifact.h"

using namespace hag;

bool bench::pyramidParamsOf(const rt::ArtifactManifest &m,
                            const std::string &source, PyramidParams &p,
                            std::string &error) {
  if (m.model.kind != rt::ModelFacts::Kind::Attention) {
    error = source + ": not an attention model";
    return false;
  }
  p.heads = m.model.heads;
  p.kvHeads = m.model.kvHeads;
  p.headDim = m.model.headDim;
  p.block = m.attention.block;
  p.ratio = m.attention.ratio;
  p.levels = m.attention.levelsAuto ? kAutoLevels : m.attention.levels;
  p.window = m.attention.window;
  p.summary = m.attention.summary;
  p.temperature = m.attention.temperature;
  if (!parseCompress(m.attention.compress, p.compress)) {
    error = source + ": unknown compress '" + m.attention.compress + "'";
    return false;
  }
  p.causal = m.attention.causal;
  p.massBias = m.attention.massBias;
  p.selectK = m.attention.selectK;
  p.eps = m.attention.eps;
  p.maxSeq = m.model.maxSeq;
  return true;
}

double bench::projectionFlops(const PyramidParams &p, int64_t dModel,
                              int64_t n) {
  double D = double(dModel), N = double(n);
  return 2.0 * N * D * double(p.modelDim() + 2 * p.kvDim()) +
         2.0 * N * double(p.modelDim()) * D;
}

bench::LayerFlops bench::pyramidFlops(const PyramidParams &p, int64_t dModel,
                                      int64_t gateHidden, int64_t n) {
  LayerFlops f;
  f.keys = double(countKeys(p, n).totalKeys);
  f.core = 4.0 * double(p.headDim) * f.keys * double(p.heads);
  double D = double(dModel), Dg = double(gateHidden);
  f.gate = 2.0 * double(n) * D * Dg + 2.0 * double(n) * Dg;
  f.projections = projectionFlops(p, dModel, n);
  return f;
}

bench::LayerFlops bench::denseFlops(const PyramidParams &p, int64_t dModel,
                                    int64_t n) {
  LayerFlops f;
  f.keys = double(denseKeys(p.causal, n));
  f.core = 4.0 * double(p.headDim) * f.keys * double(p.heads);
  f.projections = projectionFlops(p, dModel, n);
  return f;
}
