"""The paper: VGG-19's layers and their walk, the network's forward and backward, eqs. 1-7, spatial
control's mask maths, colour transforms, the L-BFGS-B driver and the gradient checks.
"""
