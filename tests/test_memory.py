"""A master from 100 full-size frames combines within its memory budget, each input read once."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
from astropy.io import fits

from nota.fitsheader import read_file_hdus

SCRIPT = """
import json, resource, sys
from pathlib import Path
from nota.archive.frames import RawFrame
from nota.pipeline.steps import common, master_bias
from nota.pipeline.tasks import Task
from nota.pipeline.worker import Work, execute
reads = []
original = common.read_raw
def counted(raw):
    reads.append(raw.name)
    return original(raw)
common.read_raw = counted
spec = json.loads(sys.argv[1])
inputs = tuple(RawFrame(**r) for r in spec["inputs"])
task = Task("master_bias", "k", spec["output"], "2008-04-12", None,
            master_bias.Params(trimsec="[61:2100,21:2032]", clip_max=800.0), inputs)
result = execute(task, {}, Work(1024 * 2**20, Path(spec["scratch"])))
print(json.dumps({"error": result.error, "reads": len(reads), "distinct": len(set(reads)),
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def test_hundred_full_size_biases_stay_under_1_5_gb(tmp_path):
    rng = np.random.default_rng(100)
    pattern = rng.normal(0, 1.5, (2052, 2198)).astype(np.float32)
    inputs = []
    for i in range(100):
        data = (355 + pattern + rng.normal(0, 5, (2052, 2198))).astype(np.uint16)
        path = tmp_path / f"bias{i:03d}.fits"
        fits.PrimaryHDU(data).writeto(path)
        hdu = read_file_hdus(str(path))[0]
        inputs.append(dict(file_id=i, path=str(path), name=path.name, content_hash=str(i), layout="simple",
                           data_hdu=0, data_offset=hdu.data_offset, naxis1=2198, naxis2=2052, bitpix=16,
                           bzero=32768.0, bscale=1.0))
    spec = {"inputs": inputs, "output": str(tmp_path / "master.fits"), "scratch": str(tmp_path / "scratch")}
    out = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(spec)], capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["error"] is None
    assert result["reads"] == result["distinct"] == 100
    assert result["peak_mb"] < 1500, result
    master = fits.getdata(tmp_path / "master.fits")
    assert master.shape == (2012, 2040)
    assert np.median(master) == np.float32(np.median(master))  # a real image came out
    assert abs(float(np.median(master - (355 + pattern[20:2032, 60:2100])))) < 1.0
