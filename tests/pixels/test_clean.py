"""Pixels: the burned-in text policy, Clean Pixel Data by rules and by OCR, high-bit overlays,
and decode -> mask -> re-encode in every transfer syntax pydicom reads here. Real codecs, no mocks."""

from __future__ import annotations

import io
import pickle
import warnings
from pathlib import Path
from typing import Any

import imagecodecs
import numpy as np
import pydicom
import pytest
from numpy.typing import NDArray
from PIL import Image, ImageDraw, ImageFont
from pydicom.dataset import Dataset
from pydicom.pixels.decoders.base import get_decoder
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    RLELossless,
    generate_uid,
)

from pipeline.dicom.file import encode
from pipeline.errors import PixelError, ProfileError
from pipeline.pixels.clean import BurnedInUnhandled, EncapsulatedDocumentRefused, PixelTask, assess, clean_pixels
from pipeline.pixels.preview import write_preview
from pipeline.profile.pixel_rules import Region, lint_filters, load_pixel_rules
from pipeline.profile.plan import PixelMode, compile_plan
from pipeline.profile.recipe import load_recipe
from pipeline.runner.process import Scrubbed, scrub_bytes
from pipeline.scrub.keys import Keys
from tests.conftest import RECIPES, bundled, make_dataset

OFF = compile_plan("basic")
RULES = compile_plan("basic", ["clean-pixel-data"])
OCR = compile_plan("basic", pixel_mode=PixelMode.OCR)
SC_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.7"
US_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.6.1"
ENCAPSULATED_PDF_STORAGE = "1.2.840.10008.5.1.4.1.1.104.1"
LOSSLESS_SYNTAXES = [ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian,
                     RLELossless, JPEGLSLossless, JPEG2000Lossless]


# ----------------------------------------------------------------------------- helpers
def decoded(ds: Dataset, as_rgb: bool = False) -> NDArray[Any]:
    """All frames as (frames, rows, columns[, samples]), as pydicom decodes them."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        array, meta = get_decoder(ds.file_meta.TransferSyntaxUID).as_array(ds, as_rgb=as_rgb)  # type: ignore[arg-type]
    samples = int(meta["samples_per_pixel"])
    shape = (int(meta["number_of_frames"]), int(meta["rows"]), int(meta["columns"]))
    return np.asarray(array).reshape(shape + ((samples,) if samples > 1 else ()))


def read(data: bytes) -> Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(io.BytesIO(data))


def text_mask(shape: tuple[int, int], text: str, at: tuple[int, int], size: int) -> NDArray[np.bool_]:
    """Where Pillow's scalable default font draws `text` on an image of `shape`."""
    canvas = Image.new("L", (shape[1], shape[0]))
    ImageDraw.Draw(canvas).text(at, text, fill=255, font=ImageFont.load_default(size=size))
    return np.asarray(canvas) > 96


def noise(shape: tuple[int, ...], low: int, high: int, seed: int = 1, dtype: Any = np.uint16) -> NDArray[Any]:
    rng = np.random.default_rng(seed)
    ramp = np.linspace(low, (low + high) // 2, shape[1])[None, :]
    if len(shape) == 3:
        ramp = ramp[..., None]
    return (ramp + rng.integers(0, (high - low) // 4, shape)).clip(low, high).astype(dtype)


def image_dataset(pixels: NDArray[Any], syntax: UID = ExplicitVRLittleEndian, *, bits_stored: int | None = None,
                  photometric: str | None = None, **attributes: Any) -> Dataset:
    """A dataset from conftest's factory holding `pixels` ((frames,) rows, columns(, 3)) in `syntax`."""
    ds = make_dataset(patient="QUILLERBY^TOBIASZEK", instance=generate_uid(prefix="1.2.826.0.1.3680043.10.9."))
    multi = pixels.ndim == 4 or (pixels.ndim == 3 and pixels.shape[-1] != 3)
    samples = 3 if pixels.shape[-1] == 3 and pixels.ndim >= 3 else 1
    ds.Rows, ds.Columns = pixels.shape[int(multi):int(multi) + 2]
    ds.SamplesPerPixel = samples
    ds.PhotometricInterpretation = photometric or ("RGB" if samples == 3 else "MONOCHROME2")
    if samples == 3:
        ds.PlanarConfiguration = 0
    if multi:
        ds.NumberOfFrames = pixels.shape[0]
    ds.BitsAllocated = pixels.dtype.itemsize * 8
    ds.BitsStored = bits_stored or ds.BitsAllocated
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 1 if pixels.dtype.kind == "i" else 0
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    ds.PixelData = pixels.tobytes()
    if syntax == JPEGLosslessSV1:
        frames = pixels if multi else pixels[None]
        fragments = [imagecodecs.jpeg8_encode(f, lossless=True, bitspersample=ds.BitsStored, predictor=1)
                     for f in frames]
        ds.PixelData = pydicom.encaps.encapsulate(fragments)
        ds["PixelData"].is_undefined_length = True
        ds["PixelData"].VR = "OB"
        ds.file_meta.TransferSyntaxUID = syntax
    elif syntax.is_compressed:
        stored = ds.BitsStored
        if (pixels.astype(np.int64) >> stored).any():  # a high-bit overlay: the encoders refuse values beyond
            ds.BitsStored = ds.BitsAllocated  # Bits Stored, so the codestream declares the whole cell
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds.compress(syntax, pixels, generate_instance_uid=False)
        ds.BitsStored = stored
    else:
        ds.file_meta.TransferSyntaxUID = syntax
    return ds


def scrubbed(ds: Dataset, plan: Any, keys: Keys) -> tuple[Scrubbed, Dataset]:
    result = scrub_bytes(encode(ds), plan, keys)
    return result, read(result.data)


def dose_report(syntax: UID) -> tuple[Dataset, NDArray[np.uint16], NDArray[np.bool_]]:
    """A GE CT dose report screen: text in the banner recipes/pixels.deid blanks (rows 0-109)."""
    pixels = noise((256, 256), 900, 1400)
    drawn = text_mask((256, 256), "QUILLERBY^TOBIASZEK 4471", (6, 20), 18)
    pixels[drawn] = 4095
    ds = image_dataset(pixels, syntax, bits_stored=12, Manufacturer="GE MEDICAL SYSTEMS",
                       SeriesDescription="Dose Report", BurnedInAnnotation="YES",
                       ImageType=["DERIVED", "SECONDARY", "SCREEN SAVE"])
    return ds, pixels, drawn


# ----------------------------------------------------------------------------- rules
@pytest.mark.parametrize("syntax", LOSSLESS_SYNTAXES, ids=lambda s: s.name)
def test_a_pixel_rule_blanks_its_region_and_keeps_every_other_pixel(syntax: UID, keys: Keys) -> None:
    ds, pixels, drawn = dose_report(syntax)
    result, out = scrubbed(ds, RULES, keys)
    after = decoded(out)[0]
    assert drawn[:110].any() and (after[:110] == pixels.min()).all()
    assert np.array_equal(after[110:], pixels[110:])
    assert out.file_meta.TransferSyntaxUID == syntax
    assert out.BurnedInAnnotation == "NO" and out.SOPInstanceUID != ds.SOPInstanceUID
    assert "113101" in {item.CodeValue for item in out.DeidentificationMethodCodeSequence}
    assert result.pixels is not None and result.pixels.labels == ("Dose Report",)


def test_jpeg_lossless_is_reencoded_as_jpeg_ls_lossless(keys: Keys) -> None:
    ds, pixels, _ = dose_report(JPEGLosslessSV1)
    _, out = scrubbed(ds, RULES, keys)
    assert out.file_meta.TransferSyntaxUID == JPEGLSLossless
    assert np.array_equal(decoded(out)[0][110:], pixels[110:])


def test_ultrasound_text_outside_the_regions_is_blanked_and_the_regions_kept(keys: Keys) -> None:
    pixels = noise((120, 160, 3), 20, 200, dtype=np.uint8)
    drawn = text_mask((120, 160), "DOE 1970", (4, 2), 14)
    pixels[drawn] = (255, 255, 0)
    region = Dataset()
    region.RegionLocationMinX0, region.RegionLocationMinY0 = 20, 30
    region.RegionLocationMaxX1, region.RegionLocationMaxY1 = 140, 110
    ds = image_dataset(pixels, RLELossless, Modality="US", SOPClassUID=US_IMAGE_STORAGE,
                       Manufacturer="ACME", SequenceOfUltrasoundRegions=[region])
    _, out = scrubbed(ds, RULES, keys)
    after = decoded(out)[0]
    inside = np.zeros((120, 160), dtype=bool)
    inside[30:110, 20:140] = True  # deid reads Max as exclusive: row 110 and column 140 go
    assert np.array_equal(after[inside], pixels[inside])
    assert (after[~inside] == 0).all() and drawn[~inside].any()
    assert out.file_meta.TransferSyntaxUID == RLELossless and out.BurnedInAnnotation == "NO"


def test_an_image_that_needs_nothing_passes_through_byte_identical(keys: Keys) -> None:
    pixels = noise((64, 64), 0, 4095)
    ds = image_dataset(pixels, JPEG2000Lossless, bits_stored=12, ImageType=["ORIGINAL", "PRIMARY", "AXIAL"],
                       Manufacturer="ACME")
    result, out = scrubbed(ds, RULES, keys)
    assert result.pixels is None and out.PixelData == ds.PixelData
    assert out.file_meta.TransferSyntaxUID == JPEG2000Lossless and "BurnedInAnnotation" not in out


# ----------------------------------------------------------------------------- policy
def test_burned_in_yes_with_no_rule_and_no_ocr_is_refused(keys: Keys) -> None:
    ds = image_dataset(noise((64, 64), 0, 4095), bits_stored=12, BurnedInAnnotation="YES", Manufacturer="ACME")
    for plan in (OFF, RULES):
        with pytest.raises(BurnedInUnhandled) as caught:
            scrub_bytes(encode(ds), plan, keys)
        assert caught.value.code == "burned-in-unhandled"


@pytest.mark.parametrize("kind", [
    {"Modality": "US", "SOPClassUID": US_IMAGE_STORAGE},
    {"SOPClassUID": SC_IMAGE_STORAGE},
    {"ImageType": ["DERIVED", "SECONDARY", "SCREEN SAVE"]},
    {"ConversionType": "SD"},
    {"ImageType": ["DERIVED", "PRIMARY"], "Manufacturer": ""},
], ids=["ultrasound", "secondary-capture", "screen-save", "scanned-document", "derived-no-manufacturer"])
def test_kinds_likely_to_carry_text_are_refused_unless_a_rule_or_ocr_cleans_them(kind: dict[str, Any]) -> None:
    attributes = {"Manufacturer": "ACME", "ImageType": ["ORIGINAL", "PRIMARY"], **kind}
    ds = image_dataset(noise((64, 64), 0, 255, dtype=np.uint8), **attributes)
    with pytest.raises(BurnedInUnhandled, match="no pixel rule locates"):
        assess(ds, RULES)
    with pytest.raises(BurnedInUnhandled, match="Clean Pixel Data was not asked for"):
        assess(ds, OFF)  # without Clean Pixel Data, likely text is refused too (fail closed)
    task = assess(ds, OCR)
    assert task is not None and task.ocr


def test_an_encapsulated_pdf_is_refused_in_every_mode(keys: Keys) -> None:
    ds = make_dataset()
    for keyword in ("Rows", "Columns", "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation",
                    "SamplesPerPixel", "PhotometricInterpretation", "PixelData"):
        del ds[keyword]
    ds.SOPClassUID = ENCAPSULATED_PDF_STORAGE
    ds.Modality = "DOC"
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocument = b"%PDF-1.4 QUILLERBY TOBIASZEK %%EOF\n"
    for plan in (OFF, RULES, OCR):
        with pytest.raises(EncapsulatedDocumentRefused) as caught:
            scrub_bytes(encode(ds), plan, keys)
        assert caught.value.code == "encapsulated-document"


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, RLELossless], ids=lambda s: s.name)
def test_an_overlay_in_unused_high_bits_is_zeroed_whatever_the_options(syntax: UID, keys: Keys) -> None:
    pixels = noise((64, 64), 0, 4095)
    plane = text_mask((64, 64), "DOE", (2, 2), 16)
    stored = pixels | (plane.astype(np.uint16) << 12)
    ds = image_dataset(stored, syntax, bits_stored=12)
    ds.add_new(0x60000010, "US", 64)  # OverlayRows
    ds.add_new(0x60000011, "US", 64)  # OverlayColumns
    ds.add_new(0x60000040, "CS", "G")  # OverlayType
    ds.add_new(0x60000100, "US", 16)  # OverlayBitsAllocated
    ds.add_new(0x60000102, "US", 12)  # OverlayBitPosition: bit 12 of Pixel Data
    result, out = scrubbed(ds, OFF, keys)
    raw = np.frombuffer(out.PixelData, dtype="<u2") if syntax == ExplicitVRLittleEndian else decoded(out)[0]
    assert plane.any() and not (raw.reshape(64, 64) & 0xF000).any()
    assert np.array_equal(raw.reshape(64, 64), pixels)
    assert not any(tag >> 16 == 0x6000 for tag in out.keys())
    assert result.pixels is not None and result.pixels.high_bits_zeroed and not result.pixels.cleaned
    assert out.file_meta.TransferSyntaxUID == syntax and "BurnedInAnnotation" not in out


# ----------------------------------------------------------------------------- OCR
def test_text_on_frame_5_of_10_is_found_and_blanked_by_ocr(keys: Keys) -> None:
    frames = np.stack([noise((96, 160), 10, 120, seed=s, dtype=np.uint8) for s in range(10)])
    drawn = text_mask((96, 160), "QUILLERBY 4471", (8, 30), 16)
    frames[4][drawn] = 250
    ds = image_dataset(frames, RLELossless, Modality="US", SOPClassUID="1.2.840.10008.5.1.4.1.1.3.1",
                       Manufacturer="ACME", BurnedInAnnotation="YES")
    result, out = scrubbed(ds, OCR, keys)
    after = decoded(out)
    assert result.pixels is not None and result.pixels.ocr_lines >= 1
    assert not (after[4][drawn] == 250).any()
    assert np.array_equal(np.delete(after, 4, axis=0), np.delete(frames, 4, axis=0))
    assert out.file_meta.TransferSyntaxUID == RLELossless and out.BurnedInAnnotation == "NO"


def test_burned_in_annotation_becomes_no_only_when_pixels_were_blanked(keys: Keys) -> None:
    blank = np.repeat(np.linspace(20, 90, 160, dtype=np.uint8)[None, :], 96, axis=0)
    ds = image_dataset(blank, Manufacturer="ACME", BurnedInAnnotation="YES")
    result, out = scrubbed(ds, OCR, keys)
    assert result.pixels is not None and not result.pixels.cleaned
    assert out.BurnedInAnnotation == "YES" and out.PixelData == ds.PixelData


# ----------------------------------------------------------------------------- every syntax
BUNDLED = [  # name, syntax after cleaning, decoded as RGB (lossy: stored decoded)
    ("JPGExtended.dcm", ExplicitVRLittleEndian, True),
    ("SC_rgb_jpeg_dcmtk.dcm", ExplicitVRLittleEndian, True),
    ("JPEG2000.dcm", ExplicitVRLittleEndian, True),
    ("JPEGLSNearLossless_08.dcm", ExplicitVRLittleEndian, True),
    ("MR_small_jpeg_ls_lossless.dcm", JPEGLSLossless, False),
    ("MR_small_jp2klossless.dcm", JPEG2000Lossless, False),
    ("GDCMJ2K_TextGBR.dcm", JPEG2000Lossless, False),
    ("MR_small_RLE.dcm", RLELossless, False),
    ("SC_rgb_rle_2frame.dcm", RLELossless, False),
    ("SC_rgb_rle_16bit.dcm", RLELossless, False),
    ("examples_palette.dcm", ExplicitVRLittleEndian, False),
    ("SC_ybr_full_422_uncompressed.dcm", ExplicitVRLittleEndian, False),
    ("MR_small_bigendian.dcm", ExplicitVRBigEndian, False),
    ("image_dfl.dcm", DeflatedExplicitVRLittleEndian, False),
    ("rtdose.dcm", ImplicitVRLittleEndian, False),
    ("liver_1frame.dcm", ExplicitVRLittleEndian, False),
]
CORNER = PixelTask(regions=(((Region(0, 0, 12, 9),), ()),), labels=("corner",))


@pytest.mark.parametrize(("name", "expected", "as_rgb"), BUNDLED, ids=[b[0] for b in BUNDLED])
def test_every_frame_of_every_readable_syntax_is_cleaned_and_stored_losslessly(
        name: str, expected: UID, as_rgb: bool) -> None:
    data = bundled(name).read_bytes()
    before = decoded(read(data), as_rgb=as_rgb)
    ds = read(data)
    lossy_before = str(ds.get("LossyImageCompression", ""))
    log = clean_pixels(ds, CORNER)
    out = read(encode(ds))
    after = decoded(out)
    assert out.file_meta.TransferSyntaxUID == expected and log.transfer_syntax_out == expected
    assert after.shape == before.shape
    corner = np.zeros(before.shape[1:3], dtype=bool)
    corner[:9, :12] = True
    assert np.array_equal(after[:, ~corner], before[:, ~corner])  # every other pixel, every frame
    assert (after[:, corner] == after[:1, corner][:, :1]).all()  # one fill value
    assert out.BurnedInAnnotation == "NO" and log.cleaned
    if as_rgb:
        assert out.LossyImageCompression == "01"
        assert "LossyImageCompressionMethod" in out and "LossyImageCompressionRatio" in out
    else:
        assert str(out.get("LossyImageCompression", "")) == lossy_before


def test_pixel_data_that_cannot_be_decoded_is_refused() -> None:
    broken = read(bundled("JPEG2000-embedded-sequence-delimiter.dcm").read_bytes())  # SIZ declares no real image
    video = read(bundled("SC_rgb_rle_2frame.dcm").read_bytes())
    video.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.102"  # MPEG-4 AVC/H.264 High Profile
    for ds in (broken, video):
        with pytest.raises(PixelError):
            clean_pixels(ds, CORNER)


# ----------------------------------------------------------------------------- plan and preview
def test_clean_pixel_data_plans_rules_and_the_plan_pickles() -> None:
    assert OFF.pixel_mode is PixelMode.OFF and OFF.pixel_rules is not None  # its flags still judge
    assert RULES.pixel_mode is PixelMode.RULES and RULES.pixel_rules is not None
    assert ("pixels.deid", RULES.pixel_rules.sha256) in RULES.recipes
    assert OCR.pixel_mode is PixelMode.OCR and "clean-pixel-data" in {o.value for o in OCR.options}
    assert pickle.loads(pickle.dumps(OCR)) == OCR
    with pytest.raises(ProfileError, match="contradicts"):
        compile_plan("basic", ["clean-pixel-data"], pixel_mode=PixelMode.OFF)
    with pytest.raises(ProfileError, match="not implemented"):
        compile_plan("basic", ["clean-recognizable-visual-features"])


def test_a_preview_shows_before_and_after_side_by_side(tmp_path: Path, keys: Keys) -> None:
    ds, _, _ = dose_report(ExplicitVRLittleEndian)
    result = scrub_bytes(encode(ds), RULES, keys, preview=True)
    assert result.pixels is not None and result.pixels.preview is not None
    write_preview(*result.pixels.preview, tmp_path / "p" / "one.png")
    shown = np.asarray(Image.open(tmp_path / "p" / "one.png"))
    assert shown.shape == (256, 2 * 256 + 8)
    assert not np.array_equal(shown[:110, :256], shown[:110, 264:])
    assert np.array_equal(shown[110:, :256], shown[110:, 264:])


# ----------------------------------------------------------------------------- the pixel recipe
def test_the_shipped_pixel_recipe_is_read_alike_by_the_lint_and_by_deid() -> None:
    rules = load_pixel_rules(RECIPES / "pixels.deid")
    assert len(rules.labels) > 100 and sum(bool(label.blank) for label in rules.labels) > 100
    assert rules.labels[0].source.startswith("pixels.deid:")


def test_the_header_lint_still_refuses_a_filter_section() -> None:
    with pytest.raises(ProfileError, match="only %header"):
        load_recipe(RECIPES / "pixels.deid")


@pytest.mark.parametrize(("body", "message"), [
    ("LABEL a\n  contains Modality US\n  || contains Modality CT\n", "evaluates a line that starts with '\\|\\|'"),
    ("LABEL a\n  contains Modalty US\n", "unknown DICOM keyword"),
    ("LABEL a\n  contains ImplementationVersionName X\n", "file meta"),
    ("LABEL a\n  equals Rows 600|768\n", "equals compares literally"),
    ("LABEL a\n  contains Modality (US\n", "not a valid regular expression"),
    ("LABEL a\n  coordinates all\n", "no filter line"),
    ("LABEL a\n  contains Modality US\n  coordinates 10,0,5,20\n", "x1 > x0"),
    ("LABEL a\n  contains Modality US\n  ctpcoordinates from:SequenceOfUltrasoundRegions\n", "four integers"),
    ("LABEL a\n  contains Modality US  # note\n", "comment"),
    ("LABEL a\n  matches Modality US\n", "unknown filter"),
], ids=["leading-or", "keyword", "file-meta", "equals-alternatives", "regex", "no-filter", "box",
        "ctp-from", "inline-comment", "unknown-filter"])
def test_a_bad_pixel_rule_is_refused_naming_its_line(body: str, message: str) -> None:
    with pytest.raises(ProfileError, match=message) as caught:
        lint_filters("FORMAT dicom\n%filter graylist\n" + body, "site.deid")
    assert "site.deid:" in str(caught.value)


@pytest.mark.parametrize(("text", "message"), [
    ("FORMAT dicom\n%header\nREMOVE PatientName\n", "only %filter"),
    ("FORMAT dicom\n%filter greylist\n", "unknown filter list"),
    ("FORMAT dicom\n%filter whitelist\nLABEL a\n  contains Modality CT\n  coordinates all\n", "only graylist"),
    ("FORMAT dicom\n%filter graylist\n%filter graylist\n", "appears twice"),
    ("%filter graylist\n", "FORMAT dicom"),
])
def test_a_pixel_recipe_holds_filter_lists_only(text: str, message: str) -> None:
    with pytest.raises(ProfileError, match=message):
        lint_filters(text, "site.deid")


def test_a_rule_deid_would_read_otherwise_is_refused(tmp_path: Path) -> None:
    # deid pairs values with filters by position: "missing" takes no value, so it would take US
    path = tmp_path / "site.deid"
    path.write_text("FORMAT dicom\n%filter graylist\nLABEL a\n  missing Manufacturer || contains Modality US\n")
    with pytest.raises(ProfileError, match="deid read LABEL 'a' differently"):
        load_pixel_rules(path)


def test_a_whitelist_waives_the_likely_kinds_but_not_a_declared_yes_and_a_blacklist_refuses(tmp_path: Path) -> None:
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    for recipe in RECIPES.glob("*.deid"):
        (profiles / recipe.name).write_bytes(recipe.read_bytes())
    with (profiles / "pixels.deid").open("a", encoding="utf-8") as stream:
        stream.write("\n%filter whitelist\n\nLABEL A console known to write no text\n"
                     "  contains Manufacturer ^ACME$\n  + contains ManufacturerModelName ^Quiet 1$\n"
                     "\n%filter blacklist\n\nLABEL Scanned consent forms\n  contains SeriesDescription consent\n")
    rules, ocr_plan = (compile_plan("basic", directory=profiles, pixel_mode=mode)
                       for mode in (PixelMode.RULES, PixelMode.OCR))
    quiet = image_dataset(noise((64, 64), 0, 255, dtype=np.uint8), SOPClassUID=SC_IMAGE_STORAGE,
                          Manufacturer="ACME", ManufacturerModelName="Quiet 1")
    assert assess(quiet, rules) is None
    quiet.BurnedInAnnotation = "YES"
    with pytest.raises(BurnedInUnhandled, match="BurnedInAnnotation is YES"):
        assess(quiet, rules)
    quiet.BurnedInAnnotation = "NO"
    quiet.SeriesDescription = "Signed consent"
    with pytest.raises(BurnedInUnhandled, match="blacklist"):
        assess(quiet, ocr_plan)
