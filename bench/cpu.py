"""CPU a process has used, from /proc/<pid>/stat: user + system time of all its threads.

Read before and after a load step, the difference divided by the step's calls is the CPU each
call cost that process (the app's, or Asterisk's). No sampling, nothing added to the process.
"""

from __future__ import annotations

import os
from pathlib import Path

#: Clock ticks per second, the unit of utime/stime.
TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def parse_cpu_ticks(stat: str) -> int:
    """utime + stime (clock ticks) from the text of /proc/<pid>/stat. The command name (field 2) is
    in parentheses and may contain spaces or ')': the fields are counted after its last ')'."""
    rest = stat[stat.rindex(")") + 2:].split()
    # rest[0] is field 3 (state); utime and stime are fields 14 and 15.
    return int(rest[11]) + int(rest[12])


def cpu_ms(pid: int) -> float:
    """Milliseconds of CPU process `pid` has used so far."""
    ticks = parse_cpu_ticks(Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace"))
    return ticks * 1000.0 / TICKS_PER_S
