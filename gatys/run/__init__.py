"""One synthesis, from options to a result: the option declarations, checks of user values, the
memory budget, the synthesis driver and the public functions.
"""
