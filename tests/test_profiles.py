"""Instrument profiles as user files: found, checked, and read on real headers.

Profiles live in temporary NOTA_PROFILES and config directories; the headers are a real SAAO
frame (shipped with ccdproc), a real 2017 ALFOSC spectrum, and MaxIm DL / N.I.N.A. headers.
"""

from __future__ import annotations

import math
import os
from importlib import resources
from pathlib import Path

import ccdproc
import pytest
from astropy.io import fits

from nota.errors import ProfileError
from nota.fitsheader import read_file_hdus
from nota.instruments import (
    available_profiles,
    load_profile,
    load_profile_file,
    profile_for_header,
    profile_named,
)
from nota.instruments.observation import observation_row
from nota.instruments.values import angle, binning, temperature
from nota.passbands import passband_for_filter
from nota.standards import find_filter

from conftest import alfosc_header

SHIPPED_ALFOSC = resources.files("nota.instruments").joinpath("alfosc.toml").read_text()


@pytest.fixture(autouse=True)
def _no_user_profiles(tmp_path, monkeypatch):
    """The developer's own ~/.config/nota must not take part."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("NOTA_PROFILES", raising=False)


def _row(header, profile=None):
    profile = profile if profile is not None else profile_for_header(header)
    return observation_row(dict(header), profile)


# Finding profiles ---------------------------------------------------------------------------

@pytest.mark.parametrize("xdg", [None, "", "config", "config/"])
def test_the_users_profile_folder_is_where_platformdirs_puts_it(tmp_path, monkeypatch, xdg):
    """On Linux nota spells out the XDG rule (platformdirs' import costs an ingest's start);
    it must land where platformdirs says, with and without XDG_CONFIG_HOME."""
    import platformdirs

    from nota.instruments.search import profile_dirs

    if xdg is None:
        monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    else:
        monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / xdg) if xdg else "")
    assert profile_dirs()[0] == Path(platformdirs.user_config_dir("nota")) / "instruments"


def test_a_profile_in_nota_profiles_shadows_the_shipped_one(tmp_path, monkeypatch):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "alfosc.toml").write_text(SHIPPED_ALFOSC.replace('telescope = "NOT"', 'telescope = "NOT (mine)"'))
    shipped = load_profile("alfosc")
    monkeypatch.setenv("NOTA_PROFILES", f"{tmp_path / 'absent'}{os.pathsep}{mine}")
    assert available_profiles()[:2] == ("alfosc", "generic")
    profile = load_profile("alfosc")
    assert profile.source == str((mine / "alfosc.toml").resolve()) and profile.telescope == "NOT (mine)"
    assert profile.selections_dir == (mine / "alfosc" / "selections").resolve()
    assert profile.digest != shipped.digest and len(profile.digest) == 16
    assert profile_named("ALFOSC").telescope == "NOT (mine)"
    assert profile_for_header(alfosc_header()).source == profile.source
    monkeypatch.delenv("NOTA_PROFILES")  # no cache outlives the environment
    assert load_profile("alfosc").source == shipped.source
    assert profile_named("ALFOSC").telescope == "NOT"


def test_the_user_config_directory_comes_after_nota_profiles(tmp_path, monkeypatch):
    config = tmp_path / "config" / "nota" / "instruments"
    config.mkdir(parents=True)
    (config / "cam.toml").write_text('[instrument]\nname = "CAM (config)"\nmatch = { INSTRUME = "^CAM" }\n')
    assert load_profile("cam").name == "CAM (config)"
    early = tmp_path / "early"
    early.mkdir()
    (early / "cam.toml").write_text('[instrument]\nname = "CAM (env)"\nmatch = { INSTRUME = "^CAM" }\n')
    monkeypatch.setenv("NOTA_PROFILES", str(early))
    assert available_profiles() == ("cam", "alfosc", "generic")
    assert profile_for_header({"INSTRUME": "CAM 1"}).name == "CAM (env)"
    (early / "cam.toml").unlink()  # at once: the directory is listed again
    assert profile_for_header({"INSTRUME": "CAM 1"}).name == "CAM (config)"


def test_load_profile_file_reads_one_file_and_sees_it_change(tmp_path):
    path = tmp_path / "night_camera.toml"
    path.write_text('[instrument]\nname = "Night camera"\n')
    first = load_profile_file(path)
    assert (first.key, first.name, first.is_fallback) == ("night_camera", "Night camera", True)
    assert "night_camera" not in available_profiles()  # named for a run, not searched
    path.write_text('[instrument]\nname = "Night camera, edited"\n')
    second = load_profile_file(path)
    assert second.name == "Night camera, edited" and second.digest != first.digest
    path.write_text('[instrument]\nname = "Night camera, EDITED"\n')  # same size, same instant
    assert load_profile_file(path).name == "Night camera, EDITED"
    with pytest.raises(ProfileError, match="no instrument profile 'nosuch'"):
        load_profile("nosuch")


# Checking profiles --------------------------------------------------------------------------

GOOD = """
[instrument]
name = "Test camera"
match = { INSTRUME = "^TEST" }

[detector]
shape = [2000, 1000]
trimsec = "[1:2000,1:1000]"

[[kinds]]
kind = "bias"
rule = "IMAGETYP says bias"
imagetyp = "bias"
"""


@pytest.mark.parametrize(("change", "key", "words"), [
    (('name = "Test camera"', 'name = "Test camera"\nmach = { X = "y" }'), "instrument.mach", "unknown key"),
    (("[detector]", "[detectr]\n[detector]"), "detectr", "unknown table"),
    (('shape = [2000, 1000]', 'shape = [2000, 1000]\ngian = 2'), "detector.gian", "unknown key"),
    (('imagetyp = "bias"', 'imagetyp = "bias"\nobjekt = "x"'), "kinds[1].objekt", "unknown key"),
    (('imagetyp = "bias"', 'imagetyp = "bias(("'), "kinds[1].imagetyp", "bad regular expression"),
    (('imagetyp = "bias"', 'header = { "HIERARCH ESO DPR TYPE" = "[bias" }'),
     "kinds[1].header.HIERARCH ESO DPR TYPE", "bad regular expression"),
    (('match = { INSTRUME = "^TEST" }', 'match = { INSTRUME = "^TEST(" }'), "instrument.match.INSTRUME",
     "bad regular expression"),
    (('[[kinds]]', '[standards]\n"HZ 44" = "hz*44)"\n[[kinds]]'), "standards.HZ 44", "bad regular expression"),
    (('trimsec = "[1:2000,1:1000]"', 'trimsec = "[1:2048,1:1000]"'), "detector.trimsec", "outside the 2000 x 1000"),
    (('trimsec = "[1:2000,1:1000]"', 'biassec = "[0:10,1:1000]"'), "detector.biassec", "FITS section"),
    (('imagetyp = "bias"', 'exptime_min = 10.0\nexptime_max = 1.0'), "kinds[1]", "can never match"),
    (('imagetyp = "bias"', 'header = {}'), "kinds[1].header", "can never match"),
    (('imagetyp = "bias"', 'standard = true'), "kinds[1].standard", "can never match"),
    (('kind = "bias"', 'kind = "flat"'), "kinds[1].kind", "is not one of"),
    (("[[kinds]]", "[reduce]\nclip_max = 800\n[[kinds]]"), "reduce.clip_max", "only tables"),
    (('trimsec = "[1:2000,1:1000]"', 'gain_unit = "e-/ADU"'), "detector.gain_unit", "is not one of"),
    (("[[kinds]]", '[filters]\npassbands = { V = "bessel-V" }\n[[kinds]]'), "filters.passbands.V",
     "not a speclite filter"),
])
def test_a_malformed_profile_is_one_line_naming_file_and_key(tmp_path, change, key, words):
    assert load_profile_file(_write(tmp_path, GOOD)).name == "Test camera"
    path = _write(tmp_path, GOOD.replace(*change), "bad.toml")
    with pytest.raises(ProfileError) as caught:
        load_profile_file(path)
    message = str(caught.value)
    assert "\n" not in message, message
    assert message.startswith(f"{path.resolve()}: {key}: "), message
    assert words in message, message


def test_a_toml_syntax_error_names_the_file(tmp_path):
    path = _write(tmp_path, GOOD + "\nthis is not toml\n", "broken.toml")
    with pytest.raises(ProfileError, match=r"broken\.toml: TOML: .*line"):
        load_profile_file(path)


def test_a_broken_profile_in_the_search_is_reported_when_read(tmp_path, monkeypatch):
    (tmp_path / "zz.toml").write_text(GOOD.replace('kind = "bias"', 'kind = "biass"'))
    monkeypatch.setenv("NOTA_PROFILES", str(tmp_path))
    with pytest.raises(ProfileError, match=r"zz\.toml: kinds\[1\]\.kind"):
        profile_for_header({"INSTRUME": "TEST"})
    assert profile_named("ALFOSC").key == "alfosc"  # other instruments still resolve


def _write(folder: Path, text: str, name: str = "test.toml") -> Path:
    (folder / name).write_text(text)
    return folder / name


# A real SAAO frame through a profile written here ----------------------------------------------

SAAO = """
[instrument]
name = "SAAO STE3"
match = { INSTRUME = "^STE3" }
[site]
latitude = -32.3794
longitude = 20.8107
[detector]
shape = [536, 520]
trimsec = "[17:528,1:520]"
biassec = "[4:13,1:520]"
[keywords]
time_obs = ["UT"]           # DATE-OBS holds only the date
airmass = ["SECZ"]
ra = ["RA"]                 # ' 22:04:08': hours
dec = ["DEC"]
gain = ["GAIN"]
read_noise = ["RDNOISE"]
ccd_temp = ["CCD-TEMP"]
[filters]
keyword = ["FILTERS"]       # 10 x wheel A + wheel B, as a number
aliases = { "48" = "V" }    # this test calls position A4 B8 "V"
passbands = { V = "bessell-V" }
[[kinds]]
kind = "science"
rule = "IMAGETYP says object"
imagetyp = "object"
exptime_min = 0.001
"""


def test_the_real_saao_frame_is_read_through_a_profile_written_here(tmp_path, monkeypatch):
    frame = Path(ccdproc.__file__).parent / "tests" / "data" / "a8280271.fits"
    header = read_file_hdus(str(frame))[0].first_values
    _write(tmp_path, SAAO, "saao.toml")
    monkeypatch.setenv("NOTA_PROFILES", str(tmp_path))
    profile = profile_for_header(header)
    assert profile.key == "saao"
    row = observation_row(header, profile)
    assert (row["instrument"], row["kind"], row["kind_rule"]) == ("SAAO STE3", "science", "IMAGETYP says object")
    assert (row["filter"], row["exptime"], row["binning"]) == ("V", 150.04, "1x1")
    assert (row["naxis1"], row["naxis2"], row["object"]) == (536, 520, "rf0420")
    assert row["date_obs"] == "2013-07-13T00:57:33.000" and row["night"] == "2013-07-12"
    assert row["ra"] == pytest.approx(331.0334, abs=1e-3) and row["dec"] == pytest.approx(-0.9253, abs=1e-3)
    assert (row["gain"], row["read_noise"], row["ccd_temp"], row["airmass"]) == (1.9, 5.0, 180.2, 1.176)
    assert (row["site_latitude"], row["site_longitude"]) == (-32.3794, 20.8107)
    assert find_filter(row["filter"], profile).passband == "bessell-V"


# ALFOSC's own spectroscopic frames ----------------------------------------------------------------

def alfosc_2017() -> dict:
    """Every card of the real 2017 ALFOSC file (Grism_#4, Slit_1.0), image HDU over primary."""
    text = resources.files("nota").joinpath("data", "alfosc_header_2017.txt").read_text()
    merged: dict = {}
    for block in text.split("### HDU")[1:]:
        cards = [line[:80] for line in block.splitlines()[1:] if line.strip() and not line.startswith("END")]
        header = fits.Header.fromstring("\n".join(cards), sep="\n")
        merged.update({k: v for k, v in header.items() if k not in ("COMMENT", "HISTORY", "")})
    return merged


def test_a_real_alfosc_spectrum_is_kept_out_of_imaging():
    header = alfosc_2017()
    assert header["ALGRNM"] == "Grism_#4" and header["ALAPRTNM"] == "Slit_1.0"
    row = _row(header)
    assert row["instrument"] == "ALFOSC"
    assert row["kind"] in ("spectrum", "arc"), row["kind_rule"]
    assert "grism" in row["kind_rule"]
    assert row["ccd_temp"] == -120.1 and row["binning"] == "1x2" and row["pixel_scale"] == pytest.approx(0.19)


def test_alfosc_arcs_by_lamp_state_and_by_name():
    lamp_on = {**alfosc_2017(), "CLAMP2": 1, "OBJECT": "MALS_C_0304-1126"}
    assert (_row(lamp_on)["kind"], _row(lamp_on)["kind_rule"]) == ("arc", "FASU Ne lamp on (CLAMP2 = 1)")
    named = {**alfosc_2017(), "OBJECT": "HeNe 1.0 slit", "EXPTIME": 2.0}
    assert _row(named)["kind"] == "arc"
    imaging = {**alfosc_2017(), "ALGRNM": "Open (Lyot)", "ALAPRTNM": "Open", "OBS_MODE": "IMAGING",
               "OBJECT": "He 2-10", "ALFLTID": 76}
    assert (_row(imaging)["kind"], _row(imaging)["filter"]) == ("science", "R")


def test_a_2008_alfosc_frame_keeps_its_kind_and_gains_the_new_facts():
    row = _row(alfosc_header(IMAGETYP="OBJECT", OBJECT="C3982 R 3x300s", EXPTIME=300.0, CCDTEMP=-119.8))
    assert (row["kind"], row["filter"], row["binning"]) == ("science", "R", "4x4")
    assert (row["site_latitude"], row["site_longitude"]) == (28.7606, -17.885)
    assert row["ccd_temp"] == -119.8 and row["pixel_scale"] == pytest.approx(0.76)


def test_kind_rules_on_any_keyword_hierarch_included(tmp_path):
    path = _write(tmp_path, GOOD.replace('imagetyp = "bias"', 'imagetyp = "bias"\n') + """
[[kinds]]
kind = "spectrum"
rule = "ESO says spectrum"
header = { "HIERARCH ESO DPR TECH" = "^SPECTRUM$", "HIERARCH ESO INS MODE" = "long" }
""")
    profile = load_profile_file(path)
    archive_style = {"INSTRUME": "TEST", "HIERARCH ESO DPR TECH": "SPECTRUM", "HIERARCH ESO INS MODE": "LONG-SLIT"}
    assert _row(archive_style, profile)["kind"] == "spectrum"
    header = fits.Header()
    header["HIERARCH ESO DPR TECH"] = "SPECTRUM"
    header["HIERARCH ESO INS MODE"] = "longslit"
    assert _row(dict(header), profile)["kind"] == "spectrum"  # astropy drops the prefix
    assert _row({"HIERARCH ESO DPR TECH": "SPECTRUM"}, profile)["kind"] == "unknown"  # a keyword missing


def test_remembered_kinds_follow_every_fact_a_rule_reads_and_the_profile_that_reads_it():
    """classify_kind remembers its answers by the facts the rules read: a frame that differs
    in one of them (a header keyword a rule tests, T against 1, the exposure time) is
    classified afresh, and a profile with other rules never takes another's answers."""
    from dataclasses import replace

    from nota.instruments.observation import classify_kind
    from nota.instruments.profile import KindRule

    rules = (KindRule("dark", "SHUTTER T", header=(("SHUTTER", "^T$"),)),
             KindRule("bias", "short", exptime_max=0.0),
             KindRule("science", "anything"))
    profile = replace(load_profile("alfosc"), kinds=rules)

    def kind(**facts):
        facts.setdefault("header", {})
        return classify_kind({"imagetyp": None, "object": "x", "exptime": 5.0, **facts}, profile)[0]

    assert kind(header={"SHUTTER": True}) == "dark"
    assert kind(header={"SHUTTER": 1}) == "science"  # 1 == True in Python, not to the rule
    assert kind(header={"SHUTTER": True}) == "dark"
    assert kind(exptime=0.0) == "bias" and kind(exptime=5.0) == "science"
    other = replace(profile, kinds=(KindRule("focus", "everything"),))
    assert classify_kind({"imagetyp": None, "object": "x", "exptime": 0.0, "header": {}}, other)[0] == "focus"
    assert kind(exptime=0.0) == "bias"


def test_numbers_too_large_for_a_float_are_no_number():
    from nota.instruments.values import number

    assert number(10 ** 400) is None and number(-(10 ** 400)) is None
    assert number(True) is None and number(7) == 7.0 and number(" 2.5 ") == 2.5


# The generic profile: MaxIm DL and N.I.N.A. headers ---------------------------------------------

def maxim(imagetyp: str, **cards) -> dict:
    """A header as MaxIm DL writes it (an SBIG CCD), with overrides."""
    return {"SIMPLE": True, "NAXIS1": 2004, "NAXIS2": 1336, "INSTRUME": "SBIG STL-11000 3 CCD Camera",
            "IMAGETYP": imagetyp, "EXPTIME": 300.0, "EXPOSURE": 300.0, "DATE-OBS": "2023-05-02T01:10:05",
            "XBINNING": 2, "YBINNING": 2, "CCD-TEMP": -20.1, "SET-TEMP": -20.0, "EGAIN": 1.37,
            "XPIXSZ": 18.0, "YPIXSZ": 18.0, "FOCALLEN": 2000.0, "OBJCTRA": "18 01 03", "OBJCTDEC": "+12 59 59",
            "SITELAT": "+40 24 03", "SITELONG": "-3 41 15", "OBJECT": "M 14", "FILTER": "V", **cards}


def nina(imagetyp: str, **cards) -> dict:
    """A header as N.I.N.A. writes it (a cooled CMOS camera): GAIN is the dial, EGAIN the e-/ADU."""
    return {"SIMPLE": True, "NAXIS1": 6248, "NAXIS2": 4176, "INSTRUME": "ZWO ASI6200MM Pro",
            "IMAGETYP": imagetyp, "EXPOSURE": 120.0, "EXPTIME": 120.0, "DATE-OBS": "2023-05-02T10:30:00.1234567",
            "XBINNING": 1, "YBINNING": 1, "GAIN": 100, "OFFSET": 50, "EGAIN": 0.25, "XPIXSZ": 3.76,
            "FOCALLEN": 530.0, "CCD-TEMP": -1.79769313486232e308, "RA": 270.2625, "DEC": -12.999722,
            "OBJCTRA": "18 01 03", "OBJCTDEC": "-12 59 59", "SITELAT": "-33 51 35.9", "SITELONG": "151.2093",
            "OBJECT": "NGC 6514", "FILTER": "Ha", **cards}


@pytest.mark.parametrize(("header", "kind"), [
    (maxim("Light Frame"), "science"), (nina("LIGHT"), "science"), (maxim("light"), "science"),
    (maxim("Bias Frame", EXPTIME=0.0), "bias"), (nina("BIAS", EXPTIME=0.0), "bias"), (maxim("Offset"), "bias"),
    (maxim("Dark Frame"), "dark"), (nina("DARK"), "dark"), (nina("DARKFLAT"), "dark"), (maxim("FlatDark"), "dark"),
    (maxim("Flat Field", OBJECT="flat"), "sky_flat"), (nina("FLAT"), "sky_flat"),
    (nina("FLAT", OBJECT="EL panel"), "dome_flat"), (maxim("Flat Field", OBJECT="Dome"), "dome_flat"),
    (maxim("Light Frame", FILTER="Grism 100 l/mm"), "spectrum"), (nina("LIGHT", FILTER="Star Analyser"), "spectrum"),
    (maxim("Light Frame", OBJECT="HZ 44"), "standard"), (nina("SNAPSHOT"), "ignored"),
])
def test_the_generic_profile_classifies_maxim_and_nina_frames(header, kind):
    row = _row(header)
    assert row["instrument"] == "generic"
    assert row["kind"] == kind, row["kind_rule"]


def test_the_generic_profile_reads_maxim_facts():
    row = _row(maxim("Light Frame"))
    assert (row["filter"], row["exptime"], row["binning"], row["gain"]) == ("V", 300.0, "2x2", 1.37)
    assert row["ccd_temp"] == -20.1
    assert row["ra"] == pytest.approx(15 * (18 + 1 / 60 + 3 / 3600))
    assert row["dec"] == pytest.approx(12 + 59 / 60 + 59 / 3600)
    assert row["site_latitude"] == pytest.approx(40.4008333)
    assert row["site_longitude"] == pytest.approx(-(3 + 41 / 60 + 15 / 3600))
    assert row["pixel_scale"] == pytest.approx(206.265 * 18.0 / 2000.0)
    assert row["night"] == "2023-05-01"


def test_the_generic_profile_reads_nina_facts():
    row = _row(nina("LIGHT"))
    assert (row["filter"], row["exptime"], row["binning"]) == ("Ha", 120.0, "1x1")
    assert row["gain"] == 0.25  # EGAIN, never the GAIN dial (100)
    assert row["ccd_temp"] is None  # the unset marker, and no SET-TEMP
    assert _row(nina("LIGHT", **{"SET-TEMP": -10.0}))["ccd_temp"] == -10.0
    assert row["ra"] == pytest.approx(270.2625) and row["dec"] == pytest.approx(-12.999722)
    assert row["site_latitude"] == pytest.approx(-(33 + 51 / 60 + 35.9 / 3600))
    assert row["night"] == "2023-05-02"  # 10:30 UT is evening at longitude +151
    assert row["date_obs"] == "2023-05-02T10:30:00.123"
    no_egain = nina("LIGHT")
    del no_egain["EGAIN"]
    assert _row(no_egain)["gain"] == load_profile("generic").detector["gain"]


@pytest.mark.parametrize(("written", "canonical"), [
    ("Ha", "Ha"), ("HA", "Ha"), ("HALPHA", "Ha"), ("R", "R"), ("r", "r"), ("H-alpha", "Ha"), ("Lum", "L"),
    ("luminance", "L"),
    ("r'", "r"), ("V", "V"), ("OIII", "OIII"), ("Open", None), ("", None), ("Custom 540", "Custom 540"),
])
def test_generic_filters_by_name_and_alias(written, canonical):
    assert _row(maxim("Light Frame", FILTER=written))["filter"] == canonical


def test_named_filters_have_passbands_for_photometry():
    generic = load_profile("generic")
    halpha = find_filter("H-alpha", generic)
    assert (halpha.name, halpha.centre_nm, halpha.fwhm_nm) == ("Ha", 656.3, 7.0)
    assert passband_for_filter(halpha).pivot == pytest.approx(6563, abs=1)
    assert passband_for_filter(find_filter("g", generic)).name == "sdss2010-g"
    assert passband_for_filter(find_filter("V", generic)).name == "bessell-V"
    with pytest.raises(KeyError):
        find_filter("Custom 540", generic)
    # ALFOSC's wheel-id table keeps working, its B/V/R now named by its profile.
    assert find_filter(76).passband == "bessell-R" and find_filter("#78").passband is None


def test_other_frame_conventions():
    assert _row(maxim("Light Frame", XBINNING=None, YBINNING=None, BINNING="3x3"))["binning"] == "3x3"
    assert _row(maxim("Light Frame", EXPTIME=None, EXPOSURE=45.0))["exptime"] == 45.0
    unknown = {"INSTRUME": "WFC", "OBJECT": "elsewhere"}
    assert profile_for_header(unknown) is None and _row(unknown, None)["kind"] == "unknown"  # no IMAGETYP


def test_gain_and_read_noise_units(tmp_path):
    text = GOOD.replace("[detector]", '[keywords]\ngain = ["GAIN"]\nread_noise = ["RDNOISE"]\n\n[detector]\n'
                        'gain = 2.0\nread_noise = 7.0\ngain_unit = "adu/e"\nread_noise_unit = "adu"')
    profile = load_profile_file(_write(tmp_path, text))
    row = _row({"INSTRUME": "TEST", "GAIN": 0.5, "RDNOISE": 3.0}, profile)
    assert (row["gain"], row["read_noise"]) == (2.0, 6.0)
    row = _row({"INSTRUME": "TEST", "GAIN": 0, "RDNOISE": 0.0}, profile)
    assert (row["gain"], row["read_noise"]) == (2.0, 7.0)  # 0 is unknown: the profile's


def test_sections_for_a_sensor_of_any_size():
    generic = load_profile("generic")
    assert generic.shape is None and generic.trimsec_for(2, 2, 3124, 2088) == "[1:3124,1:2088]"
    assert generic.biassec_for(2, 2) is None
    alfosc = load_profile("alfosc")
    assert alfosc.trimsec_for(4, 4) == "[16:525,6:508]" and alfosc.biassec_for(4, 4) == "[2:13,1:513]"


@pytest.mark.parametrize(("value", "hours", "degrees"), [
    ("18 01 03", True, 270.2625), ("12:30:00.5", True, 187.5020833), ("-12 59 59", False, -12.9997222),
    ("+40 24 03", False, 40.4008333), ("-22:57:08:99", False, -22.9524972), ("-00:55:31", False, -0.9252778),
    ("03h04m09.7s", True, 46.0404167), ("-43.2", False, -43.2), (271.5, True, 271.5), ("", False, None),
    ("north", False, None),
])
def test_sexagesimal_and_decimal_angles(value, hours, degrees):
    result = angle(value, hours=hours)
    assert result == (None if degrees is None else pytest.approx(degrees, abs=1e-6))


def test_temperatures_and_binnings():
    assert temperature(-1.79769313486232e308) is None and temperature(math.nan) is None and temperature("-15") == -15
    assert binning("2x2") == (2, 2) and binning("1 2") == (1, 2) and binning(3) == (3, 3) and binning("x") is None
