//===- CostModel.cpp - FLOPs, bytes and keys per query --------------------===//

#include "hag/Analysis/CostModel.h"
#include "hag/Dialect/HAG/IR/HAGOps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/raw_ostream.h"

using namespace mlir;
using namespace mlir::hag;

static std::string locationString(Location loc) {
  if (auto name = dyn_cast<NameLoc>(loc))
    return name.getName().str();
  if (auto file = dyn_cast<FileLineColLoc>(loc))
    return (file.getFilename().str() + ":" + std::to_string(file.getLine()) +
            ":" + std::to_string(file.getColumn()));
  std::string s;
  llvm::raw_string_ostream os(s);
  loc.print(os);
  return s;
}

/// The ops a report covers: the `forward` function when the module has one
/// (an lm's `loss` calls it, and would count it twice), else every function.
static void collectOps(ModuleOp module, SmallVectorImpl<Operation *> &ops) {
  Operation *root = module;
  if (auto forward = module.lookupSymbol<func::FuncOp>("forward"))
    root = forward;
  root->walk([&](CostOpInterface op) { ops.push_back(op); });
}

LogicalResult mlir::hag::computeCostReport(ModuleOp module,
                                           const CostContext &ctx,
                                           CostReport &report) {
  report = CostReport();
  report.ctx = ctx;
  if (ctx.seqLen < 1 || ctx.batch < 1)
    return module.emitError() << "cost report needs seq >= 1 and batch >= 1, "
                                 "got seq "
                              << ctx.seqLen << " and batch " << ctx.batch;
  SmallVector<Operation *> ops;
  collectOps(module, ops);
  for (Operation *op : ops) {
    PyramidConfigAttr config;
    if (auto a = dyn_cast<CrossLevelAttentionOp>(op))
      config = a.getConfig();
    else if (auto a = dyn_cast<PyramidAttentionOp>(op))
      config = a.getConfig();
    if (config && ctx.seqLen > config.getMaxSeq())
      return op->emitError() << "cost report at seq " << ctx.seqLen
                             << " exceeds the attention's max_seq ("
                             << config.getMaxSeq() << ")";

    OpCost cost = cast<CostOpInterface>(op).estimateCost(ctx);
    report.ops.push_back({op->getName().getStringRef().str(),
                          locationString(op->getLoc()), cost});
    report.total += cost;
    if (!config)
      continue;

    ::hag::PyramidParams p = config.toParams();
    auto it =
        llvm::find_if(report.attention, [&](const AttentionCostSummary &s) {
          return PyramidConfigAttr::fromParams(module.getContext(), s.params) ==
                 config;
        });
    if (it == report.attention.end()) {
      AttentionCostSummary s;
      s.params = p;
      s.keys = ::hag::countKeys(p, ctx.seqLen);
      report.attention.push_back(s);
      it = std::prev(report.attention.end());
    }
    double perOp = static_cast<double>(p.heads) * ctx.batch * 4.0 * p.headDim;
    it->attentionOps += 1;
    it->attentionFlops += perOp * static_cast<double>(it->keys.totalKeys);
    it->denseFlops +=
        perOp * static_cast<double>(::hag::denseKeys(p.causal, ctx.seqLen));
  }
  return success();
}

/// "1", "2", ..., "summary", "select".
static std::string levelLabel(const ::hag::KeyCounts &kc, size_t i) {
  if (i == kc.summaryIndex())
    return "summary";
  if (i == kc.selectIndex())
    return "select";
  return std::to_string(i + 1);
}

void mlir::hag::printCostReportText(const CostReport &r,
                                    llvm::raw_ostream &os) {
  os << "HAG cost report: seq " << r.ctx.seqLen << ", batch " << r.ctx.batch
     << "\n\n";
  os << llvm::format("%-24s %-28s %14s %14s\n", "op", "location", "GFLOP",
                     "MB");
  for (const OpCostEntry &e : r.ops)
    os << llvm::format("%-24s %-28s %14.4f %14.4f\n", e.opName.c_str(),
                       e.location.c_str(), e.cost.flops * 1e-9,
                       e.cost.bytes * 1e-6);
  os << llvm::format("%-24s %-28s %14.4f %14.4f\n", "total", "",
                     r.total.flops * 1e-9, r.total.bytes * 1e-6);
  for (const AttentionCostSummary &a : r.attention) {
    const ::hag::KeyCounts &kc = a.keys;
    os << "\nattention (" << a.attentionOps << " op(s), " << kc.levels
       << " levels at this length" << (a.params.isAutoLevels() ? ", auto" : "")
       << ", " << (a.params.causal ? "causal" : "bidirectional") << ")\n";
    os << llvm::format("%-10s %14s %10s\n", "level", "keys/query", "max");
    for (size_t i = 0; i < kc.sumPerLevel.size(); ++i)
      os << llvm::format("%-10s %14.3f %10lld\n", levelLabel(kc, i).c_str(),
                         double(kc.sumPerLevel[i]) / kc.seqLen,
                         (long long)kc.maxPerLevel[i]);
    os << llvm::format("%-10s %14.3f %10lld\n", "total", a.keysPerQueryMean(),
                       (long long)kc.maxKeys);
    os << llvm::format("attention GFLOP %.4f, dense GFLOP %.4f, "
                       "dense-equivalent ratio %.6f\n",
                       a.attentionFlops * 1e-9, a.denseFlops * 1e-9,
                       a.denseEquivalentRatio());
  }
}

void mlir::hag::printCostReportJSON(const CostReport &r,
                                    llvm::raw_ostream &os) {
  llvm::json::Object root;
  root["seq"] = r.ctx.seqLen;
  root["batch"] = r.ctx.batch;
  root["total_flops"] = r.total.flops;
  root["total_bytes"] = r.total.bytes;
  llvm::json::Array ops;
  for (const OpCostEntry &e : r.ops)
    ops.push_back(llvm::json::Object{{"op", e.opName},
                                     {"location", e.location},
                                     {"flops", e.cost.flops},
                                     {"bytes", e.cost.bytes}});
  root["ops"] = std::move(ops);

  llvm::json::Array attention;
  double attFlops = 0, denseFlops = 0;
  for (const AttentionCostSummary &a : r.attention) {
    const ::hag::KeyCounts &kc = a.keys;
    llvm::json::Array levels;
    for (size_t i = 0; i < kc.sumPerLevel.size(); ++i)
      levels.push_back(llvm::json::Object{
          {"level", levelLabel(kc, i)},
          {"keys_per_query_mean", double(kc.sumPerLevel[i]) / kc.seqLen},
          {"keys_per_query_max", kc.maxPerLevel[i]}});
    attention.push_back(llvm::json::Object{
        {"ops", a.attentionOps},
        {"levels", kc.levels},
        {"causal", a.params.causal},
        {"keys_total", kc.totalKeys},
        {"keys_per_query_mean", a.keysPerQueryMean()},
        {"keys_per_query_max", kc.maxKeys},
        {"per_level", std::move(levels)},
        {"attention_flops", a.attentionFlops},
        {"dense_attention_flops", a.denseFlops},
        {"dense_equivalent_ratio", a.denseEquivalentRatio()}});
    attFlops += a.attentionFlops;
    denseFlops += a.denseFlops;
  }
  if (!r.attention.empty()) {
    // The first (usually only) configuration's per-query numbers at top level.
    const AttentionCostSummary &a = r.attention.front();
    root["levels"] = a.keys.levels;
    root["keys_per_query_mean"] = a.keysPerQueryMean();
    root["keys_per_query_max"] = a.keys.maxKeys;
    root["attention_flops"] = attFlops;
    root["dense_attention_flops"] = denseFlops;
    root["dense_equivalent_ratio"] = denseFlops > 0 ? attFlops / denseFlops : 0;
  }
  root["attention"] = std::move(attention);
  os << llvm::formatv("{0:2}", llvm::json::Value(std::move(root))) << "\n";
}
