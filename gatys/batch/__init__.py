"""Many syntheses: a figure's or a sweep's cells, where they run, the grid, the results page and
the paper's figures.
"""
