"""Several processes at once on one archive: nothing lost, nobody refused."""

from __future__ import annotations

import subprocess
import sys


def test_processes_creating_one_new_archive_at_once_all_succeed(tmp_path):
    db = tmp_path / "new.db"
    code = ("from nota.archive.database import open_archive\n"
            f"a = open_archive({str(db)!r})\n"
            "print(a.conn.execute(\"SELECT value FROM archive_info WHERE key = 'archive_id'\").fetchone()[0])\n"
            "a.close()\n")
    for _ in range(3):  # a race lost is a race not seen: try it a few times
        db.unlink(missing_ok=True)
        procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True) for _ in range(6)]
        results = [(p.wait(timeout=120), p.stdout.read().strip(), p.stderr.read()) for p in procs]
        assert all(rc == 0 for rc, _, _ in results), [err for rc, _, err in results if rc]
        assert len({out for _, out, _ in results}) == 1  # one archive, made once
