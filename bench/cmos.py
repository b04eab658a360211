"""Benchmark: a cooled-CMOS night calibrated by Siril, by ccdproc's calls and by nota.

On the same simulated frames of the generic camera (20 biases, 10 darks of the lights'
exposure and temperature, the R flats and the R lights of one exposure), in one run:
  * Siril         -- its standard mono preprocessing, headless (`siril-cli -s`): master
                     bias, master dark, master flat, calibrated lights (no registration);
  * ccdproc       -- the same recipes with ccdproc's own functions, in one process;
  * nota          -- `nota ingest` and `nota reduce --no-cosmics --no-stacks --no-photometry`
                     as the whole commands a user times.
Prints wall and CPU seconds and the ratios (aim: nota within 1.5x of Siril's wall time),
then checks nota's master dark and calibrated lights against ccdproc's calls on nota's own
masters (float32), and says how much of the dark signal Siril's lights keep in hot pixels.

    python bench/cmos.py              # full size (3008 x 2008), about 5 minutes
    python bench/cmos.py --binning 2  # 1504 x 1004, the size of the issue's example
    python bench/cmos.py --small
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from astropy.io import fits

from common import cpu_seconds

SIRIL_SCRIPT = """requires 1.0.0
cd biases
convert bias -out=../process
cd ../process
stack bias rej 3 3 -nonorm
cd ../flats
convert flat -out=../process
cd ../process
preprocess flat -bias=bias_stacked
stack pp_flat rej 3 3 -norm=mul
cd ../darks
convert dark -out=../process
cd ../process
stack dark rej 3 3 -nonorm
cd ../lights
convert light -out=../process
cd ../process
preprocess light -dark=dark_stacked -flat=pp_flat_stacked
"""


def choose_frames(night: Path, out: Path) -> dict[str, list[Path]]:
    """The night's frames Siril's script takes, copied into its folders (and read by nota)."""
    headers = {p: fits.getheader(p) for p in sorted(night.rglob("*.fits"))}
    lights = [p for p, h in headers.items() if "light" in str(h.get("IMAGETYP")).lower()
              and h.get("FILTER") == "R" and h.get("EXPTIME") == 300.0]
    temp = round(float(np.median([headers[p]["CCD-TEMP"] for p in lights])))
    chosen = {
        "biases": [p for p, h in headers.items() if "bias" in str(h.get("IMAGETYP")).lower()][:20],
        "darks": [p for p, h in headers.items() if str(h.get("IMAGETYP")).lower().startswith("dark frame")
                  and h.get("EXPTIME") == 300.0 and abs(h.get("CCD-TEMP", 99) - temp) < 1][:10],
        "flats": [p for p, h in headers.items() if "flat" in str(h.get("IMAGETYP")).lower()
                  and "dark" not in str(h.get("IMAGETYP")).lower() and h.get("FILTER") == "R"],
        "lights": lights,
    }
    for folder, paths in chosen.items():
        (out / folder).mkdir(parents=True, exist_ok=True)
        for p in paths:
            if not (out / folder / p.name).exists():
                shutil.copy(p, out / folder / p.name)
    return {folder: sorted((out / folder).iterdir()) for folder in chosen}


def timed_command(command: list[str], **kw) -> tuple[float, float]:
    """(wall, CPU) seconds of a whole command, its children included."""
    cpu, wall = cpu_seconds(), time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, **kw)
    return time.perf_counter() - wall, cpu_seconds() - cpu


REPEAT = 3


def _median_run(times: list[tuple[float, float]]) -> tuple[float, float]:
    """The run of median wall time, as (wall, CPU)."""
    return sorted(times)[len(times) // 2]


def run_siril(work: Path) -> tuple[float, float]:
    work = work.resolve()  # Siril reads the script's path after changing to the folder
    shutil.rmtree(work / "process", ignore_errors=True)
    (work / "process").mkdir()
    (work / "preprocess.ssf").write_text(SIRIL_SCRIPT)
    return timed_command(["siril-cli", "-d", str(work), "-s", str(work / "preprocess.ssf")],
                         stderr=subprocess.DEVNULL)


def _ccd(path, hdu=0):
    from astropy.nddata import CCDData

    with fits.open(path) as hdul:
        return CCDData(hdul[hdu].data.astype(np.float32), unit="adu")


def run_ccdproc(frames: dict[str, list[Path]]) -> tuple[float, float]:
    """The lecture's way with ccdproc's functions: median masters, then each light."""
    import astropy.units as u
    import ccdproc

    cpu, wall = cpu_seconds(), time.perf_counter()
    bias = ccdproc.Combiner([_ccd(p) for p in frames["biases"]]).median_combine()
    dark = ccdproc.Combiner([ccdproc.subtract_bias(_ccd(p), bias) for p in frames["darks"]]).median_combine()
    flats = [ccdproc.subtract_bias(_ccd(p), bias) for p in frames["flats"]]
    combiner = ccdproc.Combiner(flats)
    combiner.scaling = [1 / np.median(f.data) for f in flats]
    flat = combiner.median_combine()
    for p in frames["lights"]:
        light = ccdproc.subtract_bias(_ccd(p), bias)
        light = ccdproc.subtract_dark(light, dark, dark_exposure=300 * u.s, data_exposure=300 * u.s, scale=True)
        ccdproc.flat_correct(light, flat)
    return time.perf_counter() - wall, cpu_seconds() - cpu


def run_nota(work: Path) -> dict[str, tuple[float, float]]:
    nota = shutil.which("nota", path=str(Path(sys.executable).parent)) or "nota"
    db = work / "nota.db"
    for stale in (db, work / "nota.db-wal", work / "nota.db-shm"):
        stale.unlink(missing_ok=True)
    shutil.rmtree(work / "nota.products", ignore_errors=True)
    raw = [str(work / f) for f in ("biases", "darks", "flats", "lights")]
    ingest = timed_command([nota, "--db", str(db), "ingest", *raw])
    reduce = timed_command([nota, "--db", str(db), "reduce", "--no-cosmics", "--no-stacks", "--no-photometry"])
    return {"nota ingest": ingest, "nota reduce": reduce}


def check_nota(work: Path) -> list[str]:
    """nota's master dark and lights against ccdproc's calls on nota's own masters."""
    import astropy.units as u
    import ccdproc

    conn = sqlite3.connect(work / "nota.db")
    products = conn.execute("SELECT p.kind, p.path, f.path FROM products p LEFT JOIN files f USING (file_id)"
                            " WHERE p.current = 1").fetchall()
    by_kind = {}
    for kind, path, raw in products:
        by_kind.setdefault(kind, []).append((path, raw))
    lines = []
    (bias_path, _), = by_kind["master_bias"]
    bias = _ccd(bias_path)
    darks = [p for p, _ in by_kind["master_dark"] if "300" in Path(p).name]
    theirs = ccdproc.Combiner([ccdproc.subtract_bias(_ccd(p), bias) for p in sorted((work / "darks").iterdir())])
    dark_theirs = theirs.median_combine().data
    dark_ours = fits.getdata(darks[0]).astype(np.float32)
    lines.append(f"master dark vs ccdproc: max |diff| {np.max(np.abs(dark_ours - dark_theirs)):.2e} ADU"
                 f" (float32 step at its level {np.spacing(np.float32(np.max(np.abs(dark_theirs)))):.1e})")
    worst = 0.0
    for path, raw in by_kind["reduced"]:
        header = fits.getheader(path)
        flat = next(p for p, _ in by_kind["master_flat"] if Path(p).name == header["NOTAFLAT"])
        dark = next(p for p, _ in by_kind["master_dark"] if Path(p).name == header["NOTADARK"])
        light = ccdproc.subtract_bias(_ccd(raw), bias)
        light = ccdproc.subtract_dark(light, _ccd(dark), dark_exposure=300 * u.s, data_exposure=300 * u.s, scale=True)
        light = ccdproc.flat_correct(light, _ccd(flat))
        with fits.open(path) as ours:
            good = ~ours["MASK"].data.astype(bool)
            rel = np.abs(ours[0].data[good] - light.data[good]) / np.maximum(np.abs(light.data[good]), 1.0)
            worst = max(worst, float(rel.max()))
    lines.append(f"{len(by_kind['reduced'])} calibrated lights vs ccdproc: worst relative difference {worst:.1e}"
                 " (float32 is 6e-8)")
    return lines


def check_siril(work: Path, frames: dict[str, list[Path]]) -> str:
    """How much of the dark signal Siril's first light keeps in the hottest pixels."""
    dark = np.median([fits.getdata(p).astype(np.float32) for p in frames["darks"]], axis=0)
    bias = np.median([fits.getdata(p).astype(np.float32) for p in frames["biases"]], axis=0)
    signal = dark - bias
    hot = signal > np.percentile(signal, 99.9)
    light = sorted((work / "process").glob("pp_light_*.fit*"))
    if not light:
        return "Siril wrote no calibrated light (see its log)"
    siril = fits.getdata(light[0]).astype(np.float64)
    raw = fits.getdata(frames["lights"][0]).astype(np.float64) - bias
    scale = np.median(raw) / np.median(siril)  # Siril's output is in its own units
    around = np.median(siril[~hot]) * scale
    kept = (np.median(siril[hot]) * scale - around) / np.median(signal[hot])
    return f"Siril's light keeps {100 * kept:.1f} % of the dark signal in the hottest 0.1 % of pixels"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help="4x4-binned frames (a quick check)")
    parser.add_argument("--binning", type=int, default=None,
                        help="read the sensor out binned NxN (2: 1504 x 1004, near the issue's 1536 x 1024)")
    parser.add_argument("--out", type=Path, default=Path("bench/out/cmos"))
    args = parser.parse_args()
    if not shutil.which("siril-cli"):
        print("siril-cli not found: apt-get install siril", file=sys.stderr)
        return 1
    from nota.simulate.generic import simulate_generic

    binning = args.binning or (4 if args.small else 1)
    name = {1: "full", 4: "small"}.get(binning, f"bin{binning}")
    sim = args.out / name
    if not (sim / ".complete").exists():
        print(f"simulating the generic camera's night into {sim} ...", flush=True)
        simulate_generic(sim, nights=1, seed=2026, binning=binning)
        (sim / ".complete").touch()
    work = args.out / ("work" if binning == 1 else f"work_{name}")
    frames = choose_frames(sim / "N1", work)
    shape = fits.getdata(frames["lights"][0]).shape
    print(f"{', '.join(f'{len(v)} {k}' for k, v in frames.items())} of {shape[1]} x {shape[0]}")

    # Siril and nota in turn, REPEAT times each (this machine's speed drifts by a third from
    # one minute to the next), the median of each; ccdproc once, it is ten times slower.
    runs: dict[str, list[tuple[float, float]]] = {}
    for _ in range(REPEAT):
        runs.setdefault("Siril (siril-cli -s)", []).append(run_siril(work))
        for label, timing in run_nota(work).items():
            runs.setdefault(label, []).append(timing)
    timings = {label: _median_run(times) for label, times in runs.items()}
    timings["ccdproc's calls"] = run_ccdproc(frames)
    print(f"\n{'':24} {'wall s':>8} {'cpu s':>8}   (Siril and nota: medians of {REPEAT} runs in turn)")
    for label, (wall, cpu) in timings.items():
        print(f"{label:24} {wall:8.2f} {cpu:8.2f}")
    siril = timings["Siril (siril-cli -s)"][0]
    reduce_only = timings["nota reduce"][0]
    whole = reduce_only + timings["nota ingest"][0]
    print(f"\nratio nota reduce / Siril (wall):          {reduce_only / siril:6.2f}x   (aim <= 1.5)")
    print(f"ratio nota ingest + reduce / Siril (wall): {whole / siril:6.2f}x")
    peer = timings["ccdproc's calls"][0]
    print(f"ratio ccdproc / nota reduce (wall):        {peer / reduce_only:6.2f}x")
    for line in check_nota(work) + [check_siril(work, frames)]:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
