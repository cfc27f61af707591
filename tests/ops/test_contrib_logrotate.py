"""contrib/rexecd.logrotate agrees with the unit it is for: the new file is
created for the user the unit runs rexecd as (any other owner is refused at
reopen), in the unit's logs directory, and postrotate sends the unit's reload
(SIGHUP, which reopens the log)."""

from __future__ import annotations

import re
from pathlib import Path

CONTRIB = Path(__file__).resolve().parents[2] / "contrib"


def test_the_logrotate_snippet_matches_the_unit() -> None:
    unit = (CONTRIB / "rexecd.service").read_text()
    rotate = (CONTRIB / "rexecd.logrotate").read_text()
    user = re.search(r"^User=(\S+)$", unit, re.M).group(1)
    group = re.search(r"^Group=(\S+)$", unit, re.M).group(1)
    logs = re.search(r"^LogsDirectory=(\S+)$", unit, re.M).group(1)
    assert "ExecReload=/bin/kill -HUP $MAINPID" in unit
    assert re.search(rf"^/var/log/{logs}/audit\.jsonl {{$", rotate, re.M), rotate
    assert re.search(rf"^\s+create 0600 {user} {group}$", rotate, re.M), rotate
    assert re.search(rf"^\s+su {user} {group}$", rotate, re.M), rotate
    assert "copytruncate" not in rotate
    postrotate = rotate.split("postrotate", 1)[1].split("endscript", 1)[0]
    assert "systemctl reload rexecd" in postrotate
