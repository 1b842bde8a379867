//===- hag-run.cpp - run a compiled HAG model -----------------------------===//

#include "HagRun.h"

int main(int argc, char **argv) {
  return hag::run::hagRunMain(argc, argv, stdout, stderr);
}
