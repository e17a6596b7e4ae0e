"""Reading and writing pictures and files: images, atomic writes, signals, loss plots, figure
panels. Imports only gatys.errors.
"""
