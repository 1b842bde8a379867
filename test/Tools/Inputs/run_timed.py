#!/usr/bin/env python3
"""Runs a command with a hard time limit, for the fault tests.

  run_timed.py LIMIT_SECONDS COMMAND...

Prints the command's output (stdout, then stderr), then one line:
"ended with exit N within LIMIT s", or "HUNG: still running after LIMIT s"
(then kills its whole process group). Always exits 0: FileCheck judges."""
import os
import signal
import subprocess
import sys
import time

limit = float(sys.argv[1])
start = time.monotonic()
proc = subprocess.Popen(sys.argv[2:], stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE, text=True,
                        start_new_session=True)
try:
    out, err = proc.communicate(timeout=limit)
    sys.stdout.write(out + err)
    print(f"ended with exit {proc.returncode} within {limit:g} s "
          f"({time.monotonic() - start:.0f} s)")
except subprocess.TimeoutExpired:
    os.killpg(proc.pid, signal.SIGKILL)
    out, err = proc.communicate()
    sys.stdout.write(out + err)
    print(f"HUNG: still running after {limit:g} s")
