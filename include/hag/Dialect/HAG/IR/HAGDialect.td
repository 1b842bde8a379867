//===- HAGDialect.td - The hag dialect and its op base -----*- tablegen -*-===//

#ifndef HAG_DIALECT_TD
#define HAG_DIALECT_TD

include "mlir/IR/OpBase.td"

def HAG_Dialect : Dialect {
  let name = "hag";
  let cppNamespace = "::mlir::hag";
  let summary = "Hierarchical (pyramid) attention and the language model around it";
  let description = [{
    The `hag` dialect models pyramid-attention language models on tensors: a
    learned memory gate scores every token, keys and values are compressed into
    levels (raw, 1/r, 1/r^2, ..., plus a global summary) and every query attends
    to a window of each level and to the summary in one softmax.

    Activations are ranked tensors `[batch, seq, features]`; the batch and the
    sequence length may be dynamic (`?`) so that one compiled artifact serves
    every sequence length up to the configured `max_seq`. Heads are packed in
    the feature dimension (`heads * head_dim`), head `h` owning columns
    `[h*d, (h+1)*d)`. The semantics of every op are those of
    `shared/design/pyramid-attention.md`.
  }];
  let useDefaultAttributePrinterParser = 1;
  let extraClassDeclaration = [{
    /// Adds the attributes; defined beside their storage in HAGAttrs.cpp.
    void registerAttributes();
  }];
}

class HAG_Op<string mnemonic, list<Trait> traits = []>
    : Op<HAG_Dialect, mnemonic, traits>;

#endif // HAG_DIALECT_TD
