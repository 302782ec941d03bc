"""Building blocks shared by the FR metrics, one module per theme (as piq's `functional`).

`validation` (input checks), `batching` (reference sharing), `arithmetic` (MATLAB rounding, powers,
similarities), `colour` (rgb2gray, colour matrices, Lab), `filters` (kernels, MATLAB borders, box downsampling,
gradients), `resize` (MATLAB imresize), `spectral` (FFT grids, log-Gabor), `pooling` (float64 means) and
`staging` (eager on a shape's first call, compiled once the shape repeats).
Images are NHWC tensors; small numpy builders make the constant kernels and matrices.
"""
