"""DICOMweb credentials and answers without a server (the server tests are in tests/cli/test_scan.py):
secrets come from the environment or a file and never show in a repr or an error; a WADO-RS
multipart/related answer gives back its part's bytes unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import InputError, SourceError
from pipeline.runner.dicomweb import RETRIES, Credentials, multipart_parts, open_session
from tests.conftest import bundled

SECRET = "correct-horse-battery"


def test_basic_credentials_come_from_variables_or_files_and_never_show(tmp_path: Path) -> None:
    secret_file = tmp_path / "password"
    secret_file.write_text(SECRET + "\n")
    from_file = Credentials.from_environ({"DEID_PIPELINE_DICOMWEB_USER": "scanner",
                                          "DEID_PIPELINE_DICOMWEB_PASSWORD_FILE": str(secret_file)})
    from_variable = Credentials.from_environ({"DEID_PIPELINE_DICOMWEB_USER": "scanner",
                                              "DEID_PIPELINE_DICOMWEB_PASSWORD": SECRET})
    assert from_file == from_variable
    assert (from_file.user, from_file.password, from_file.token) == ("scanner", SECRET, None)
    assert SECRET not in repr(from_file) and "scanner" not in repr(from_file)


def test_a_bearer_token_file_and_a_ca_bundle_are_read(tmp_path: Path) -> None:
    (tmp_path / "token").write_text(SECRET)
    found = Credentials.from_environ({"DEID_PIPELINE_DICOMWEB_TOKEN_FILE": str(tmp_path / "token"),
                                      "DEID_PIPELINE_DICOMWEB_CA_BUNDLE": "/etc/ssl/ca.pem"})
    assert (found.token, found.user, found.ca_bundle) == (SECRET, None, "/etc/ssl/ca.pem")
    assert Credentials.from_environ({}) == Credentials()


@pytest.mark.parametrize("environ", [
    {"DEID_PIPELINE_DICOMWEB_TOKEN": SECRET, "DEID_PIPELINE_DICOMWEB_USER": "scanner",
     "DEID_PIPELINE_DICOMWEB_PASSWORD": SECRET},
    {"DEID_PIPELINE_DICOMWEB_USER": "scanner"},
    {"DEID_PIPELINE_DICOMWEB_PASSWORD": SECRET},
    {"DEID_PIPELINE_DICOMWEB_TOKEN": SECRET, "DEID_PIPELINE_DICOMWEB_TOKEN_FILE": "/x"},
    {"DEID_PIPELINE_DICOMWEB_TOKEN_FILE": "/nonexistent/token"},
])
def test_ambiguous_or_unreadable_credentials_are_refused_without_the_secret(environ: dict[str, str]) -> None:
    with pytest.raises(InputError) as caught:
        Credentials.from_environ(environ)
    assert SECRET not in str(caught.value)


def test_a_multipart_related_answer_gives_its_part_unchanged() -> None:
    data = bundled("CT_small.dcm").read_bytes()
    body = (b"--xyz\r\nContent-Type: application/dicom; transfer-syntax=1.2.840.10008.1.2.1\r\n\r\n"
            + data + b"\r\n--xyz--\r\n")
    assert multipart_parts('multipart/related; type="application/dicom"; boundary=xyz', body) == [data]
    assert multipart_parts("application/dicom", data) == [data]
    with pytest.raises(SourceError, match="multipart/related"):
        multipart_parts("text/html", b"<html>")


def test_a_session_verifies_tls_always_and_retries_a_bounded_number_of_times(tmp_path: Path) -> None:
    plain = open_session(Credentials())
    private = open_session(Credentials(token=SECRET, ca_bundle=str(tmp_path / "ca.pem")))
    assert plain.verify is True and private.verify == str(tmp_path / "ca.pem")
    assert private.headers["Authorization"] == f"Bearer {SECRET}" and "Authorization" not in plain.headers
    for scheme in ("http://", "https://"):
        retry = plain.get_adapter(scheme + "pacs.example").max_retries
        assert (retry.total, retry.status, retry.connect) == (RETRIES, RETRIES, RETRIES)
        assert set(retry.status_forcelist) == {408, 429, 500, 502, 503, 504}
        assert retry.allowed_methods == frozenset({"GET"})  # STOW-RS and the like are not repeated here
