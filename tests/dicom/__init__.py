"""Tests of pipeline/dicom: reading one file from bytes and encoding it back."""
