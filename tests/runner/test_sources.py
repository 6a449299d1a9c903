"""Sources of instances (issue 17): how a source string is read, the listing order `--sample`
takes its first N from, and the same keys from a folder and from an fsspec store. The object
store and DICOMweb servers themselves are exercised in tests/cli/test_scan.py."""

from __future__ import annotations

import uuid
from pathlib import Path

import fsspec
import pytest

from pipeline.errors import InputError, SourceError
from pipeline.runner.sources import Source, SourceKind, iter_instances, parse_source

FILES = ("b/2.dcm", "a.dcm", "b/1.dcm", "c/d/3.dcm", "c/0.dcm", "z.dcm")
# depth first: a folder's files by name, then its sub-folders by name
LISTING = ["a.dcm", "z.dcm", "b/1.dcm", "b/2.dcm", "c/0.dcm", "c/d/3.dcm"]


def tree(root: Path) -> Path:
    for name in FILES:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(name.encode())
    return root


def test_source_strings_name_a_folder_a_store_or_a_dicomweb_server() -> None:
    assert parse_source("/data/release") == Source(SourceKind.FOLDER, "/data/release")
    assert parse_source("file:///data/release") == Source(SourceKind.FOLDER, "/data/release")
    assert parse_source("s3://bucket/prefix") == Source(SourceKind.FSSPEC, "s3://bucket/prefix")
    web = parse_source("dicomweb+https://pacs.example:8443/dicom-web/", ("1.2.3",), (("Modality", "CT"),))
    assert web == Source(SourceKind.DICOMWEB, "https://pacs.example:8443/dicom-web", ("1.2.3",), (("Modality", "CT"),))
    assert parse_source("dicomweb+http://127.0.0.1:8042/dicom-web").location == "http://127.0.0.1:8042/dicom-web"


@pytest.mark.parametrize("text", ["dicomweb+https://alice:secret@pacs.example/dicom-web",
                                  "s3://KEYID:secret@bucket/prefix"])
def test_credentials_in_a_source_url_are_refused_without_repeating_them(text: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_source(text)
    assert "secret" not in str(caught.value)


def test_a_dicomweb_url_with_a_query_is_refused_without_repeating_it() -> None:
    with pytest.raises(InputError, match="--query") as caught:
        parse_source("dicomweb+https://pacs.example/dicom-web?access_token=secret")
    assert "secret" not in str(caught.value)


def test_study_filters_are_for_dicomweb_only() -> None:
    with pytest.raises(InputError, match="DICOMweb"):
        parse_source("/data/release", ("1.2.3",))


def test_a_folder_is_listed_depth_first_by_name_and_a_sample_is_its_first_n(tmp_path: Path) -> None:
    root = tree(tmp_path)
    listed = list(iter_instances(parse_source(str(root))))
    assert [i.key for i in listed] == LISTING
    assert all(i.data == i.key.encode() for i in listed)
    assert [i.key for i in iter_instances(parse_source(str(root)), sample=4)] == LISTING[:4]
    assert [i.key for i in iter_instances(parse_source(root.as_uri()), sample=100)] == LISTING


def test_an_fsspec_store_gives_the_keys_a_folder_gives(tmp_path: Path) -> None:
    root = tree(tmp_path / "local")
    fs = fsspec.filesystem("memory")
    prefix = f"/{uuid.uuid4().hex}/release"
    for name in FILES:
        fs.pipe_file(f"{prefix}/{name}", (root / name).read_bytes())
    try:
        remote = [(i.key, i.data) for i in iter_instances(parse_source(f"memory://{prefix}"))]
        assert remote == [(i.key, i.data) for i in iter_instances(parse_source(str(root)))]
        assert [key for key, _ in remote][:2] == LISTING[:2]
        single = list(iter_instances(parse_source(f"memory://{prefix}/c/d/3.dcm")))
        assert [(i.key, i.data) for i in single] == [("3.dcm", b"c/d/3.dcm")]
    finally:
        fs.rm(prefix.rsplit("/", 1)[0], recursive=True)


def test_a_missing_store_prefix_or_folder_is_an_error_and_a_sample_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="memory://nowhere"):
        list(iter_instances(parse_source(f"memory://nowhere/{uuid.uuid4().hex}")))
    with pytest.raises(InputError):
        list(iter_instances(parse_source(str(tmp_path / "missing"))))
    with pytest.raises(InputError, match="--sample"):
        iter_instances(parse_source(str(tmp_path)), sample=0)


def test_an_unknown_url_scheme_says_which_extra_to_install() -> None:
    with pytest.raises(SourceError, match=r"deid-pipeline\[cloud\]"):
        list(iter_instances(parse_source("nosuchscheme://bucket/x")))
