"""Run a module under cProfile timed by CPU, not wall, time.

    python bench/cpu_cprofile.py OUT.prof -m rexec.daemon --port 0 ...

``python -m cProfile`` charges a function the wall time it blocked (a vfork'd
spawn waiting for the child's exec, an idle ``epoll``), which on a shared
machine says more about the other jobs than about rexecd. Timed with
``time.process_time`` the profile shows the CPU each function costs the
process itself. The profile is written when the module returns or exits.
"""

from __future__ import annotations

import cProfile
import runpy
import sys
import time


def main() -> None:
    if len(sys.argv) < 4 or sys.argv[2] != "-m":
        sys.exit(__doc__.strip().splitlines()[2].strip())
    out, module = sys.argv[1], sys.argv[3]
    sys.argv = [module, *sys.argv[4:]]
    profile = cProfile.Profile(time.process_time)
    profile.enable()
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    finally:
        profile.disable()
        profile.dump_stats(out)


if __name__ == "__main__":
    main()
