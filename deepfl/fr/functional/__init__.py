"""Building blocks shared by the FR metrics, one module per theme (as piq's `functional`).

`validation` (input checks), `batching` (reference sharing), `arithmetic` (MATLAB rounding, powers,
similarities), `colour` (rgb2gray, colour matrices, Lab), `filters` (kernels, MATLAB borders, box downsampling,
gradients), `resize` (MATLAB imresize), `spectral` (FFT grids, log-Gabor), `pooling` (float64 means) and
`staging` (uncompiled on a new shape, compiled once the shape has repeated enough to pay for it).
Images are NHWC tensors; small numpy builders make the constant kernels and matrices.
"""
