"""The fast header reader against astropy's own reading of the same files."""

from __future__ import annotations

import gzip
from importlib import resources

import numpy as np
import pytest
from astropy.io import fits

from nota.fitsheader import read_file_hdus
from nota.errors import FitsError


def real_alfosc_headers() -> list[fits.Header]:
    """The two headers of a real ALFOSC file, from the dump shipped in nota/data."""
    text = resources.files("nota").joinpath("data", "alfosc_header_2017.txt").read_text()
    headers = []
    for block in text.split("### HDU ")[1:]:
        lines = [ln[:80] for ln in block.splitlines()[1:] if not ln.startswith("END")]
        headers.append(fits.Header.fromstring("".join(ln.ljust(80) for ln in lines)))
    return headers


def assert_same_cards(path, **open_kwargs):
    ours = read_file_hdus(str(path))
    with fits.open(path, **open_kwargs) as hdul:
        assert [len(h.header) for h in hdul] == [len(h.cards) for h in ours]
        for hdu, mine in zip(hdul, ours):
            for card, my in zip(hdu.header.cards, mine.cards):
                keyword = card.keyword
                if my.keyword.startswith("HIERARCH "):
                    assert my.keyword == "HIERARCH " + keyword
                else:
                    assert my.keyword == keyword
                if keyword in ("COMMENT", "HISTORY", ""):
                    assert str(card.value).rstrip() == str(my.value).rstrip()
                elif isinstance(card.value, fits.card.Undefined):
                    assert my.value is None, keyword
                else:
                    assert my.value == card.value, keyword
                    assert my.comment == card.comment, keyword


def test_real_alfosc_mef_headers_read_as_astropy_reads_them(tmp_path):
    primary, image = real_alfosc_headers()
    assert len(primary) > 100  # the real file's size
    for k in ("NAXIS1", "NAXIS2"):
        image[k] = 8
    path = tmp_path / "ALAb170110.fits"
    image_hdu = fits.ImageHDU(np.zeros((8, 8), dtype=np.int32), header=image)
    fits.HDUList([fits.PrimaryHDU(header=primary), image_hdu]).writeto(path)
    assert_same_cards(path)
    hdus = read_file_hdus(str(path))
    assert hdus[0].get("ALFLTID") == 1005
    assert hdus[1].get("BIASSEC") == "[3:52,1:2102]"
    assert hdus[1].is_image and not hdus[0].is_image


def test_awkward_cards(tmp_path):
    header = fits.Header()
    header["LONGSTR"] = "a long string that needs CONTINUE cards " * 4
    header["QUOTE"] = "it's"
    header["HIERARCH ESO DET CHIP ID"] = "ccd-1"
    header["CPLX"] = complex(1.5, -2)
    header["BIGINT"] = 2**40
    header["LOGIC"] = False
    header["UNDEF"] = None
    header["HISTORY"] = "first"
    header["HISTORY"] = "second"
    header.append(("", ""), bottom=True)
    header["COMMENT"] = "after a blank card"
    header["EXPTIME"] = 1.199
    path = tmp_path / "awkward.fits"
    fits.PrimaryHDU(np.zeros((4, 5), dtype=np.uint16), header=header).writeto(path)
    assert_same_cards(path)
    cards = {c.keyword: c.value for c in read_file_hdus(str(path))[0].cards}
    assert cards["LONGSTR"] == header["LONGSTR"]
    assert cards["CPLX"] == complex(1.5, -2)
    assert cards["LOGIC"] is False and cards["UNDEF"] is None


def test_a_header_read_again_from_the_cache_is_the_same(tmp_path):
    """Known cards skip parsing; long strings and non-FITS values must still be handled."""
    header = fits.Header()
    header["LONGSTR"] = "a long string that needs CONTINUE cards " * 4
    header["EXPTIME"] = 1.199
    path = tmp_path / "again.fits"
    fits.PrimaryHDU(np.zeros((2, 2), dtype=np.uint16), header=header).writeto(path)
    raw = bytearray(path.read_bytes())
    pos = raw.index(b"EXPTIME =")
    raw[pos : pos + 80] = b"EXPTIME = 1.2.3 oops".ljust(80)
    path.write_bytes(bytes(raw))
    first, again = read_file_hdus(str(path))[0], read_file_hdus(str(path))[0]
    assert again.cards == first.cards and again.warnings == first.warnings
    assert again.get("LONGSTR") == header["LONGSTR"]
    assert any("EXPTIME" in w for w in again.warnings)


def test_d_exponent_and_repeated_keywords(tmp_path):
    path = tmp_path / "d.fits"
    fits.PrimaryHDU(np.zeros((2, 2), dtype=np.uint16)).writeto(path)
    raw = bytearray(path.read_bytes())
    card = f"{'GAINX':8}= {'1.5D+00':>20} / a Fortran exponent".ljust(80).encode()
    end = raw.index(b"END" + b" " * 77)
    raw[end : end + 160] = card + (b"END" + b" " * 77)
    path.write_bytes(bytes(raw))
    (hdu,) = read_file_hdus(str(path))
    assert hdu.get("GAINX") == 1.5


def test_gzip_and_tile_compressed(tmp_path):
    data = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64)
    plain = tmp_path / "f.fits"
    fits.PrimaryHDU(data, header=fits.Header([("OBJECT", "M 51")])).writeto(plain)
    gz = tmp_path / "f.fits.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes()))
    assert_same_cards(gz)
    fz = tmp_path / "f.fz"
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(data)]).writeto(fz)
    assert_same_cards(fz, disable_image_compression=True)
    hdus = read_file_hdus(str(fz))
    assert hdus[1].is_image and hdus[1].get("ZNAXIS1") == 64


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "empty"),
        (b"hello world, not FITS" * 200, "not a FITS file"),
        (b"SIMPLE  =                    T" + b" " * 50 + b"BITPIX  = 16" + b" " * 68, "ends mid-block"),
        (b"SIMPLE  =                    T".ljust(2880), "no END card"),
    ],
)
def test_bad_bytes_raise_with_a_reason(tmp_path, content, message):
    path = tmp_path / "bad.fits"
    path.write_bytes(content)
    with pytest.raises(FitsError, match=message):
        read_file_hdus(str(path))


def test_truncated_data_unit(tmp_path):
    path = tmp_path / "t.fits"
    fits.PrimaryHDU(np.zeros((100, 100), dtype=np.uint16)).writeto(path)
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(FitsError, match="truncated"):
        read_file_hdus(str(path))
