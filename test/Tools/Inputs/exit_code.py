#!/usr/bin/env python3
"""Runs a command and prints its output (stdout, then stderr), then a last
line "exit N, K line(s)" with its exit status and how many lines it wrote."""
import subprocess
import sys

proc = subprocess.run(sys.argv[1:], capture_output=True, text=True)
output = proc.stdout + proc.stderr
sys.stdout.write(output)
lines = output.count("\n") + (0 if output.endswith("\n") or not output else 1)
print(f"exit {proc.returncode}, {lines} line(s)")
