"""Pixels: takes the original header and the plan; decides whether burned-in text must be cleaned
(rules, OCR), masks it, re-encodes losslessly, and gives a `PixelLog` (or refuses the image).
"""
