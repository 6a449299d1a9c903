"""One DICOM file from bytes and back: the hostile-input walk of declared lengths, then read
(pydicom) into a `Dataset`, and encode a dataset as a PS3.10 file.
"""
