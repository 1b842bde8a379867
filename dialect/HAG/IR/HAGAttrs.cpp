//===- HAGAttrs.cpp - hag attributes --------------------------------------===//
//
// #hag.pyramid<...>: a custom syntax of `key = value` pairs in any order, with
// the defaults of spec section 1 for keys left out.
//
//===----------------------------------------------------------------------===//

#include "hag/Dialect/HAG/IR/HAGAttrs.h"
#include "hag/Analysis/PyramidWindows.h"
#include "hag/Dialect/HAG/IR/HAGDialect.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/ADT/TypeSwitch.h"

#include <cstdio>
#include <cstdlib>

using namespace mlir;
using namespace mlir::hag;

#include "hag/Dialect/HAG/IR/HAGEnums.cpp.inc"

#define GET_ATTRDEF_CLASSES
#include "hag/Dialect/HAG/IR/HAGAttrs.cpp.inc"

void HAGDialect::registerAttributes() {
  addAttributes<
#define GET_ATTRDEF_LIST
#include "hag/Dialect/HAG/IR/HAGAttrs.cpp.inc"
      >();
}

static APFloat toAP(double v) { return APFloat(v); }

::hag::PyramidParams PyramidConfigAttr::toParams() const {
  ::hag::PyramidParams p;
  p.heads = getHeads();
  p.kvHeads = getKvHeads();
  p.headDim = getHeadDim();
  p.block = getBlock();
  p.ratio = getRatio();
  p.levels = getLevels();
  p.window = getWindow();
  p.summary = getSummary();
  p.temperature = getTemperature().convertToDouble();
  p.compress = static_cast<::hag::Compress>(getCompress());
  p.causal = getCausal();
  p.massBias = getMassBias().convertToDouble();
  p.selectK = getSelectK();
  p.eps = getEps().convertToDouble();
  p.maxSeq = getMaxSeq();
  p.localOnly = getLocalOnly();
  return p;
}

PyramidConfigAttr PyramidConfigAttr::fromParams(MLIRContext *ctx,
                                                const ::hag::PyramidParams &p) {
  return PyramidConfigAttr::get(
      ctx, p.heads, p.kvHeads, p.headDim, p.block, p.ratio, p.levels, p.window,
      p.summary, toAP(p.temperature), static_cast<CompressMode>(p.compress),
      p.causal, toAP(p.massBias), p.selectK, toAP(p.eps), p.maxSeq,
      p.localOnly);
}

int64_t PyramidConfigAttr::getStaticLevels() const {
  return ::hag::staticLevels(toParams());
}

LogicalResult
PyramidConfigAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                          int64_t heads, int64_t kvHeads, int64_t headDim,
                          int64_t block, int64_t ratio, int64_t levels,
                          int64_t window, int64_t summary, APFloat temperature,
                          CompressMode compress, bool causal, APFloat massBias,
                          int64_t selectK, APFloat eps, int64_t maxSeq,
                          bool localOnly) {
  ::hag::PyramidParams p;
  p.heads = heads;
  p.kvHeads = kvHeads;
  p.headDim = headDim;
  p.block = block;
  p.ratio = ratio;
  p.levels = levels;
  p.window = window;
  p.summary = summary;
  p.temperature = temperature.convertToDouble();
  p.compress = static_cast<::hag::Compress>(compress);
  p.causal = causal;
  p.massBias = massBias.convertToDouble();
  p.selectK = selectK;
  p.eps = eps.convertToDouble();
  p.maxSeq = maxSeq;
  p.localOnly = localOnly;
  std::string msg = ::hag::validatePyramidParams(p);
  if (!msg.empty())
    return emitError() << "invalid pyramid configuration: " << msg;
  return success();
}

Attribute PyramidConfigAttr::parse(AsmParser &parser, Type) {
  ::hag::PyramidParams p;
  bool sawHeads = false, sawKvHeads = false, sawHeadDim = false;
  llvm::StringSet<> seen;
  SMLoc startLoc = parser.getCurrentLocation();
  if (parser.parseLess())
    return {};

  auto parseInt = [&](int64_t &v) { return parser.parseInteger(v); };
  auto parseFloat = [&](double &v) { return parser.parseFloat(v); };
  auto parseKey = [&]() -> ParseResult {
    SMLoc keyLoc = parser.getCurrentLocation();
    std::string key;
    if (parser.parseKeywordOrString(&key) || parser.parseEqual())
      return failure();
    if (!seen.insert(key).second)
      return parser.emitError(keyLoc) << "duplicate key '" << key << "'";
    if (key == "heads") {
      sawHeads = true;
      return parseInt(p.heads);
    }
    if (key == "kv_heads") {
      sawKvHeads = true;
      return parseInt(p.kvHeads);
    }
    if (key == "head_dim") {
      sawHeadDim = true;
      return parseInt(p.headDim);
    }
    if (key == "block")
      return parseInt(p.block);
    if (key == "ratio")
      return parseInt(p.ratio);
    if (key == "levels") {
      if (succeeded(parser.parseOptionalKeyword("auto"))) {
        p.levels = ::hag::kAutoLevels;
        return success();
      }
      SMLoc valLoc = parser.getCurrentLocation();
      if (parseInt(p.levels))
        return failure();
      if (p.levels == ::hag::kAutoLevels)
        return parser.emitError(valLoc)
               << "levels must be 3..12 or auto, got 0";
      return success();
    }
    if (key == "window")
      return parseInt(p.window);
    if (key == "summary")
      return parseInt(p.summary);
    if (key == "temperature")
      return parseFloat(p.temperature);
    if (key == "compress") {
      SMLoc valLoc = parser.getCurrentLocation();
      std::string mode;
      if (parser.parseKeywordOrString(&mode))
        return failure();
      if (!::hag::parseCompress(mode, p.compress))
        return parser.emitError(valLoc)
               << "compress must be gated_mean, max or conv, got '" << mode
               << "'";
      return success();
    }
    auto parseBool = [&](bool &v) -> ParseResult {
      if (succeeded(parser.parseOptionalKeyword("true")))
        v = true;
      else if (succeeded(parser.parseOptionalKeyword("false")))
        v = false;
      else
        return parser.emitError(parser.getCurrentLocation())
               << key << " must be true or false";
      return success();
    };
    if (key == "causal")
      return parseBool(p.causal);
    if (key == "local_only")
      return parseBool(p.localOnly);
    if (key == "mass_bias")
      return parseFloat(p.massBias);
    if (key == "select_k")
      return parseInt(p.selectK);
    if (key == "eps")
      return parseFloat(p.eps);
    if (key == "max_seq")
      return parseInt(p.maxSeq);
    return parser.emitError(keyLoc)
           << "unknown key '" << key
           << "' in #hag.pyramid (expected heads, kv_heads, head_dim, block, "
              "ratio, levels, window, summary, temperature, compress, causal, "
              "mass_bias, select_k, eps, max_seq or local_only)";
  };

  if (parser.parseCommaSeparatedList(parseKey) || parser.parseGreater())
    return {};
  if (!sawHeads || !sawHeadDim) {
    parser.emitError(startLoc) << "#hag.pyramid needs 'heads' and 'head_dim'";
    return {};
  }
  if (!sawKvHeads)
    p.kvHeads = p.heads;
  return PyramidConfigAttr::getChecked(
      [&] { return parser.emitError(startLoc); }, parser.getContext(), p.heads,
      p.kvHeads, p.headDim, p.block, p.ratio, p.levels, p.window, p.summary,
      toAP(p.temperature), static_cast<CompressMode>(p.compress), p.causal,
      toAP(p.massBias), p.selectK, toAP(p.eps), p.maxSeq, p.localOnly);
}

/// The shortest decimal form of `v` that parses back to the same double, with
/// a '.' so that MLIR's lexer reads it as a float literal.
static std::string shortFloat(double v) {
  char buf[64];
  for (int precision = 1; precision <= 17; ++precision) {
    snprintf(buf, sizeof(buf), "%.*g", precision, v);
    if (strtod(buf, nullptr) == v)
      break;
  }
  std::string s(buf);
  if (s.find_first_of(".ni") == std::string::npos) { // not nan/inf
    size_t e = s.find('e');
    s.insert(e == std::string::npos ? s.size() : e, ".0");
  }
  return s;
}

void PyramidConfigAttr::print(AsmPrinter &printer) const {
  printer << "<heads = " << getHeads() << ", kv_heads = " << getKvHeads()
          << ", head_dim = " << getHeadDim() << ", block = " << getBlock()
          << ", ratio = " << getRatio() << ", levels = ";
  if (isAutoLevels())
    printer << "auto";
  else
    printer << getLevels();
  printer << ", window = " << getWindow() << ", summary = " << getSummary()
          << ", temperature = "
          << shortFloat(getTemperature().convertToDouble())
          << ", compress = " << stringifyCompressMode(getCompress())
          << ", causal = " << (getCausal() ? "true" : "false")
          << ", mass_bias = " << shortFloat(getMassBias().convertToDouble())
          << ", select_k = " << getSelectK()
          << ", eps = " << shortFloat(getEps().convertToDouble())
          << ", max_seq = " << getMaxSeq();
  if (getLocalOnly())
    printer << ", local_only = true";
  printer << ">";
}
